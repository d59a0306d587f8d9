#!/usr/bin/python3
"""A device on paho-mqtt with the library's default settings (MQTT 3.1.1,
clean session true), driven by the e2e tests: it connects with the device id
as client id, subscribes to its inbox at QoS 1, and collects inbox events
until it has COUNT `msg` events or SECONDS pass. It prints one JSON line:
the events, in arrival order.

Settings come from the environment: HOST, PORT, DEVICE, TOKEN, COUNT,
SECONDS."""
import json
import os
import time

import paho.mqtt.client as mqtt

from inbox import follow_inbox

device = os.environ['DEVICE']
count = int(os.environ.get('COUNT', '1'))
deadline = time.time() + float(os.environ.get('SECONDS', '15'))
state = {}

# Nothing but the client id (and the callback API paho 2 asks for): paho's defaults are what is under test.
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
client.username_pw_set(device, os.environ['TOKEN'])
follow_inbox(client, device, state)
client.connect(os.environ['HOST'], int(os.environ['PORT']), keepalive=30)
client.loop_start()
while time.time() < deadline and len([e for e in state['events'] if e.get('type') == 'msg']) < count:
    time.sleep(0.05)
# PUBACKs go out as each message is handled; a clean DISCONNECT follows them.
client.disconnect()
client.loop_stop()
print(json.dumps({'connected': state['connects'] > 0, 'events': state['events']}))
