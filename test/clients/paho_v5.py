#!/usr/bin/python3
"""A device on paho-mqtt (2.x from PyPI) speaking MQTT 5, driven by the e2e
tests: it connects with the device id as client id and its token as
password, reports the CONNACK's reason code and properties, and when accepted
subscribes to its inbox at QoS 1, publishes each envelope of ENVELOPES (a
JSON list) to chat/CHAT/msg at QoS 1, records each PUBACK's reason code and
Reason String in publish order, and collects inbox events until it has COUNT
`msg` events and every PUBACK, or SECONDS pass. It prints one JSON line.

Settings come from the environment: HOST, PORT, DEVICE, TOKEN, CHAT,
ENVELOPES, COUNT, SECONDS."""
import json
import os
import time

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

device = os.environ['DEVICE']
count = int(os.environ.get('COUNT', '1'))
deadline = time.time() + float(os.environ.get('SECONDS', '15'))
state = {'connack': None, 'properties': {}, 'events': [], 'published': 0, 'pubacks': {}}
envelopes = json.loads(os.environ.get('ENVELOPES', '[]'))
mids = []


def on_connect(c, userdata, flags, reason, properties):
    state['connack'] = reason.value
    if properties is not None:
        state['properties'] = {k: v for k, v in vars(properties).items() if k in ('MaximumPacketSize', 'ReceiveMaximum', 'SharedSubscriptionAvailable')}
    if reason.value == 0:
        c.subscribe(f'dev/{device}/inbox', qos=1)


def on_subscribe(c, userdata, mid, reason_codes, properties):
    for env in envelopes:
        mids.append(c.publish(f"chat/{os.environ['CHAT']}/msg", json.dumps(env), qos=1).mid)


def on_publish(c, userdata, mid, reason, properties):
    state['published'] += 1
    reason_string = getattr(properties, 'ReasonString', None) if properties is not None else None
    state['pubacks'][mid] = {'code': reason.value, 'reason': reason_string}


def on_message(c, userdata, msg):
    try:
        state['events'].append(json.loads(msg.payload))
    except ValueError:
        pass


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
client.username_pw_set(device, os.environ['TOKEN'])
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.on_message = on_message
props = Properties(PacketTypes.CONNECT)
props.SessionExpiryInterval = 3600
client.connect(os.environ['HOST'], int(os.environ['PORT']), keepalive=30, clean_start=False, properties=props)
client.loop_start()
while time.time() < deadline:
    if state['connack'] not in (None, 0):
        break
    if len([e for e in state['events'] if e.get('type') == 'msg']) >= count and len(state['pubacks']) >= len(envelopes):
        break
    time.sleep(0.05)
client.disconnect()
client.loop_stop()
# The acknowledgements in the order the envelopes were published.
state['pubacks'] = [state['pubacks'].get(m) for m in mids]
print(json.dumps(state))
