#!py
"""Master reaction to energy/docker/* (the docker_events engine energy.heal installs on each
minion): hand the event, as data, to the runner energy.react_event, which checks it (a container
of the stack, of the minion that sent it) and has that minion recreate the container with
energy_heal.react. Nothing of the event is rendered into text: a minion is not trusted to send it."""


def run():
    return {
        "energy-heal-react-runner": {
            "runner.energy.react_event": [
                {"args": [{"minion": data.get("id")}, {"event": data.get("data")}]},  # noqa: F821
            ],
        },
    }
