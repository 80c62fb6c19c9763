"""A large bytes result is read into its final object (issue 10, point 7):
a 100 MiB return raises the client's peak resident size by at most 1.3x the
payload above idle (it was 2x: the frame, then a copy of it). Measured in a
fresh client process with VmHWM, reset just before the call."""

import subprocess
import sys
import textwrap

MIB = 1 << 20


def test_a_100_mib_bytes_return_peaks_the_client_at_most_1_3x(server):
    code = textwrap.dedent(
        f"""
        from pyrpc import Client

        def kb(field):
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))

        c = Client(address={server.address!r})
        assert c.big(1 << 20) == b"1" * (1 << 20)  # connection up, buffers warm
        idle = kb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        got = c.big(100 << 20)
        peak = kb("VmHWM")
        assert type(got) is bytes and len(got) == 100 << 20 and got[:1] == got[-1:] == b"1"
        print((peak - idle) / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    above_mib = float(out.stdout.strip())
    assert above_mib <= 1.3 * 100, f"the client peaked {above_mib:.0f} MiB above idle for 100 MiB"
