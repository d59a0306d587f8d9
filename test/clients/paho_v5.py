#!/usr/bin/python3
"""A device on paho-mqtt speaking MQTT 5, driven by the e2e tests: it
connects with the device id as client id and its token as password, reports
the CONNACK's reason code and properties, and when accepted subscribes to its
inbox at QoS 1, publishes each envelope of ENVELOPES (a JSON list) to
chat/CHAT/msg at QoS 1, and collects inbox events until it has COUNT `msg`
events or SECONDS pass. It prints one JSON line.

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
state = {'connack': None, 'properties': {}, 'events': [], 'published': 0}


def on_connect(c, userdata, flags, reason, properties):
    state['connack'] = reason.value
    if properties is not None:
        state['properties'] = {k: v for k, v in vars(properties).items() if k in ('MaximumPacketSize', 'ReceiveMaximum', 'SharedSubscriptionAvailable')}
    if reason.value == 0:
        c.subscribe(f'dev/{device}/inbox', qos=1)


def on_subscribe(c, userdata, mid, granted, properties):
    for env in json.loads(os.environ.get('ENVELOPES', '[]')):
        c.publish(f"chat/{os.environ['CHAT']}/msg", json.dumps(env), qos=1)


def on_publish(c, userdata, mid):
    state['published'] += 1


def on_message(c, userdata, msg):
    try:
        state['events'].append(json.loads(msg.payload))
    except ValueError:
        pass


client = mqtt.Client(client_id=device, protocol=mqtt.MQTTv5)
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
    if len([e for e in state['events'] if e.get('type') == 'msg']) >= count:
        break
    time.sleep(0.05)
client.disconnect()
client.loop_stop()
print(json.dumps(state))
