package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Small host-to-device uploads inside a step (token ids, targets, the embedding backward's plan)
 * without draining the stream. A copy from pageable memory first waits for every queued kernel,
 * so each one left the GPU idle until the host queued the next kernel; these copies go from
 * page-locked buffers instead and run in stream order, like a kernel. Buffers rotate through a
 * ring; one is written again only after the event recorded behind its last copy has passed,
 * which in a step is long before the ring comes round.
 */
final class HostStaging implements AutoCloseable {

    private static final int SLOTS = 8;

    private final CudaDriver driver;
    private final MemorySegment[] buffers = new MemorySegment[SLOTS];
    private final MemorySegment[] copied = new MemorySegment[SLOTS];
    private final boolean[] pending = new boolean[SLOTS];
    private int next;

    HostStaging(CudaDriver driver) {
        this.driver = driver;
        for (int i = 0; i < SLOTS; i++) {
            copied[i] = driver.eventCreate();
        }
    }

    /** Queues a copy of values[0, n) to the device address dst on the stream; returns at once. */
    void upload(long dst, int[] values, int n, MemorySegment stream) {
        long bytes = (long) n * Integer.BYTES;
        if (bytes == 0) {
            return;
        }
        int slot = next;
        next = (next + 1) % SLOTS;
        if (pending[slot]) {
            driver.eventSynchronize(copied[slot]); // its last copy has run: the buffer may be rewritten
        }
        if (buffers[slot] == null || buffers[slot].byteSize() < bytes) {
            if (buffers[slot] != null) {
                driver.memFreeHost(buffers[slot]);
            }
            buffers[slot] = driver.memHostAlloc(Math.max(bytes, 4096));
        }
        MemorySegment.copy(values, 0, buffers[slot], JAVA_INT, 0, n);
        driver.memcpyHtoDAsync(dst, buffers[slot], bytes, stream);
        driver.eventRecord(copied[slot], stream);
        pending[slot] = true;
    }

    /** Call with the stream idle (the backend synchronizes before closing). */
    @Override
    public void close() {
        for (int i = 0; i < SLOTS; i++) {
            if (buffers[i] != null) {
                driver.memFreeHost(buffers[i]);
                buffers[i] = null;
            }
            driver.eventDestroy(copied[i]);
        }
    }
}
