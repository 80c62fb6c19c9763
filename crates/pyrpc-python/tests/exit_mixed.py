"""Every kind of call, some still in flight when the interpreter exits.

Run by test_exit.py many times at once: ``python exit_mixed.py HOST PORT``
(a TestServer in another process, for the calls left in flight) or
``python exit_mixed.py UNIX_PATH``. Prints "done" as its last line.
"""

import asyncio
import sys
import threading

from pyrpc import Client, Server


class Local(Server):
    address = ("127.0.0.1", 0)
    nonblocking = True

    def echo(self, x):
        return x

    async def adouble(self, x):
        await asyncio.sleep(0)
        return 2 * x

    def count(self, n):
        yield from range(n)

    async def acount(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i


remote_address = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) == 3 else sys.argv[1]

local = Local()
local.start_in_thread()
near = Client(address=local.bound_address())
far = Client(address=remote_address)

assert near.echo(1) == 1
assert near.nb_echo(2) == 2
assert near.adouble(3) == 6
assert far.echo(3) == ((3,), {})
assert list(near.count(5)) == [0, 1, 2, 3, 4]
# A stream half read and still open at exit.
open_stream = near.count(100_000)
assert next(open_stream) == 0

# A daemon thread blocked in a blocking call still running at exit, and one
# polling a non-blocking call.
threading.Thread(target=lambda: far.sleep(30), daemon=True).start()
threading.Thread(target=lambda: far.nb_sleep(30), daemon=True).start()


async def main():
    got = await asyncio.gather(*(near.co_echo(i) for i in range(50)))
    assert got == list(range(50))
    got = await asyncio.gather(*(near.co_adouble(i) for i in range(20)))
    assert got == [2 * i for i in range(20)]
    assert await near.co_nb_echo(7) == 7
    assert [i async for i in near.co_acount(5)] == [0, 1, 2, 3, 4]
    async for i in near.co_count(100_000):
        if i == 3:
            break  # leaves the stream early: the server stops the generator
    got = await asyncio.gather(*(far.co_add(i, 1) for i in range(50)))
    assert got == [i + 1 for i in range(50)]
    # co_ calls still in flight when the loop ends (asyncio.run cancels them)
    for _ in range(5):
        asyncio.ensure_future(far.co_sleep(30))
    await asyncio.sleep(0.02)


asyncio.run(main())
for i in range(20):
    assert near.echo(i) == i
print("done")
