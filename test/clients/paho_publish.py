#!/usr/bin/python3
"""A device on paho-mqtt (2.x from PyPI, its version 2 callbacks), driven by the e2e
tests. It connects with a persistent session (clean session false, the
device id as client id), subscribes to its inbox, publishes the given
envelopes at QoS 1 in order, and waits until every one is acknowledged or
the deadline passes, reconnecting as paho does. It prints one JSON line:
how often it connected, which publishes were acknowledged, and the inbox
events it got.

Settings come from the environment: HOST, PORT, DEVICE, TOKEN, CHAT,
ENVELOPES (a JSON list), SECONDS (the deadline), and for TLS: TLS=1, CAFILE,
and TRANSPORT=websockets with WS_PATH for MQTT over WebSocket."""
import json
import os
import ssl
import time

import paho.mqtt.client as mqtt

from inbox import follow_inbox

device = os.environ['DEVICE']
chat = os.environ['CHAT']
envelopes = json.loads(os.environ['ENVELOPES'])
deadline = time.time() + float(os.environ.get('SECONDS', '15'))
state = {'connects': 0, 'acked': set(), 'events': []}

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, clean_session=False, protocol=mqtt.MQTTv311,
                     transport=os.environ.get('TRANSPORT', 'tcp'))
if os.environ.get('TRANSPORT') == 'websockets':
    client.ws_set_options(path=os.environ.get('WS_PATH', '/mqtt'))
if os.environ.get('TLS') == '1':
    client.tls_set(ca_certs=os.environ['CAFILE'], cert_reqs=ssl.CERT_REQUIRED)
client.username_pw_set(device, os.environ['TOKEN'])
client.reconnect_delay_set(min_delay=1, max_delay=1)


follow_inbox(client, device, state)
client.on_publish = lambda c, userdata, mid, reason_code, properties: state['acked'].add(mid)
client.connect(os.environ['HOST'], int(os.environ['PORT']), keepalive=30)
client.loop_start()
while state['connects'] == 0 and time.time() < deadline:
    time.sleep(0.05)
mids = [client.publish(f'chat/{chat}/msg', json.dumps(e), qos=1).mid for e in envelopes]
while not all(m in state['acked'] for m in mids) and time.time() < deadline:
    time.sleep(0.05)
# The inbox events for what was published (acks, errors) follow the PUBACKs closely.
ids = {e.get('id') for e in envelopes}
while time.time() < deadline and len([e for e in state['events'] if e.get('id') in ids]) < len(ids):
    time.sleep(0.05)
client.loop_stop()
client.disconnect()
print(json.dumps({'connects': state['connects'], 'acked': [m in state['acked'] for m in mids], 'events': state['events']}), flush=True)
