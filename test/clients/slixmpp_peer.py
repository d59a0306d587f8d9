#!/usr/bin/python3
"""An XMPP client built on slixmpp (Debian's python3-slixmpp), driven by the
gateway's e2e test. It signs in over STARTTLS (verifying the server against
the test's CA file), sends chat states and messages with receipt requests to
a peer, answers receipts (XEP-0184, automatic) and markers (XEP-0333) for
what it receives, and prints one JSON line per event on stdout. It stops when
its standard input closes.

Settings come from the environment: JID, PASSWORD, HOST, PORT, CAFILE, PEER,
SEND (how many messages to send)."""
import asyncio
import json
import os
import sys

import slixmpp


def out(**event):
    print(json.dumps(event), flush=True)


class Peer(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(os.environ['JID'], os.environ['PASSWORD'])
        self.ca_certs = os.environ['CAFILE']
        self.peer = os.environ['PEER']
        self.to_send = int(os.environ.get('SEND', '0'))
        for plugin in ('xep_0030', 'xep_0085', 'xep_0184', 'xep_0333', 'xep_0199'):
            self.register_plugin(plugin)
        self['xep_0184'].auto_ack = True
        self['xep_0184'].auto_request = True
        self.add_event_handler('session_start', self.start)
        self.add_event_handler('message', self.message)
        self.add_event_handler('receipt_received', lambda m: out(event='receipt', id=m['receipt']))
        self.add_event_handler('marker_received', lambda m: out(event='marker_received', id=m['received']['id']))
        self.add_event_handler('marker_displayed', lambda m: out(event='marker_displayed', id=m['displayed']['id']))
        self.add_event_handler('chatstate_composing', lambda m: out(event='composing', frm=m['from'].bare))
        self.add_event_handler('failed_auth', lambda _: out(event='failed_auth'))

    async def start(self, _event):
        self.send_presence()
        roster = await self.get_roster()
        out(event='session', jid=str(self.boundjid), roster=sorted(str(j) for j in roster['roster']['items'].keys()))
        m = self.make_message(mto=self.peer, mtype='chat')
        m['chat_state'] = 'composing'
        m.send()
        for i in range(self.to_send):
            m = self.make_message(mto=self.peer, mbody=f'from slixmpp {i}', mtype='chat')
            m['id'] = f's{i}'
            m.send()
        out(event='sent', count=self.to_send)

    def message(self, msg):
        if msg['type'] != 'chat' or not msg['body']:
            return
        sid = msg.xml.find('{urn:xmpp:sid:0}stanza-id')
        out(event='msg', body=msg['body'], id=msg['id'], frm=str(msg['from']),
            stanza_id=sid.get('id') if sid is not None else None)
        # Read as soon as shown: the displayed marker names the message's id.
        self['xep_0333'].send_marker(msg['from'].bare, msg['id'], 'displayed')


async def main():
    peer = Peer()
    peer.connect((os.environ['HOST'], int(os.environ['PORT'])), force_starttls=True)
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), lambda: sys.stdin.readline() or (done.done() or done.set_result(True)))
    await done
    peer.disconnect()
    await asyncio.sleep(0.5)


asyncio.run(main())
