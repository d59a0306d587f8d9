"""Shared by the paho-mqtt device scripts: follow a device's inbox."""
import json


def follow_inbox(client, device, state):
    """On every successful connect, count it in state['connects'] and
    subscribe to the device's inbox at QoS 1; collect each JSON inbox event in
    state['events'], in arrival order."""
    state.setdefault('connects', 0)
    state.setdefault('events', [])

    def on_connect(c, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            state['connects'] += 1
            c.subscribe(f'dev/{device}/inbox', qos=1)

    def on_message(c, userdata, msg):
        try:
            state['events'].append(json.loads(msg.payload))
        except ValueError:
            pass

    client.on_connect = on_connect
    client.on_message = on_message
