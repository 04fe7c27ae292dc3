"""A real SMTP server on loopback for the mail tests (aiosmtpd).

Prints {"port": N} once listening, then one JSON line per received message. `reject` as the first
argument answers every DATA with a permanent failure. Exits when its standard input closes.
"""
import asyncio
import json
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, reject):
        self.reject = reject

    async def handle_DATA(self, server, session, envelope):
        if self.reject:
            return "554 5.7.1 refused by the test server"
        print(json.dumps({
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }), flush=True)
        return "250 OK"


async def main():
    reject = len(sys.argv) > 1 and sys.argv[1] == "reject"
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(reject)), "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main())
