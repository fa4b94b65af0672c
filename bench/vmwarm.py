"""warm_memory(): the same memory state before every timed phase of a benchmark.

This VM (virtio_balloon with free page reporting) hands freed guest memory back to its host a
few seconds after it is freed, and the next touch of such memory faults on the host: measured
here, writing a 2.4 GB tree takes 0.38-0.62 s right after an equal amount was freed, 1.1-1.4 s
after a 3 s pause, 2.5 s after 10 s and up to 4.1 s on long-idle memory. So that no side of a
comparison gets warm or cold memory by the order it runs in, every timed phase that writes or
allocates starts right after this.
"""
import os
import subprocess

WARM_BYTES = 4 << 30  # a 2.4 GB tree plus a process's heap (< 1 GiB)


def warm_memory(work_dir, nbytes=WARM_BYTES):
    """Writes and deletes nbytes in the page cache under work_dir, then syncs."""
    f = os.path.join(work_dir, "vmwarm")
    subprocess.run(["dd", "if=/dev/zero", "of=" + f, "bs=4M", "count=%d" % (nbytes >> 22)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    os.unlink(f)
    subprocess.run(["sync"], check=True)
