package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * All device memory of one backend: parameters, gradients, optimizer state, activations and
 * scratch are ranges of it, 256-byte aligned, handed out by a bump pointer and freed together when
 * the backend closes, never by the garbage collector. A range given back with {@link #free} is
 * reused by the next request of the same rounded size (a scratch buffer that grew, a tensor a
 * caller released).
 *
 * <p>The ranges lie in one reserved span of virtual addresses as large as the device, backed by
 * physical memory only as far as the bump pointer has come (CUDA's virtual memory management:
 * cuMemCreate and cuMemMap in multiples of the allocation granularity, 2 MiB on current GPUs). So
 * the arena grows without a plan and without waste: the memory in use is what was handed out,
 * rounded up once to the granularity, where one cuMemAlloc per tensor rounds up each one. A device
 * without virtual memory management (or one whose first mapping fails for another reason than
 * memory) gets one cuMemAlloc per range instead, said once on stderr.
 *
 * <p>Not thread-safe, as the backend. Freed ranges are reused in stream order: everything runs on
 * the backend's one stream, so work queued after a reuse runs after the work that read the range
 * before.
 */
final class DeviceArena implements AutoCloseable {

    static final long ALIGNMENT = 256;
    private static final int ALLOCATION_TYPE_PINNED = 1, LOCATION_TYPE_DEVICE = 1, ACCESS_READ_WRITE = 3;

    private final CudaDriver driver;
    private final Map<Long, ArrayDeque<Long>> freed = new HashMap<>(); // rounded size -> addresses
    private final List<long[]> mappings = new ArrayList<>();            // {address, bytes} of each cuMemMap
    private final List<Long> allocations = new ArrayList<>();          // cuMemAlloc addresses (without virtual memory)
    private final Arena host = Arena.ofShared();
    private MemorySegment prop, access;
    private long granularity, base, reserved, mapped, top;
    private boolean virtual;
    private long handedOut;

    DeviceArena(CudaDriver driver, int device) {
        this.driver = driver;
        if (driver.deviceAttribute(CudaDriver.VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, device) == 0) {
            fallBack("the device has no virtual memory management");
            return;
        }
        // CUmemAllocationProp (32 bytes): type, requestedHandleTypes (none), location {type, id}, the rest 0
        prop = host.allocate(32, 8);
        prop.set(JAVA_INT, 0, ALLOCATION_TYPE_PINNED);
        prop.set(JAVA_INT, 8, LOCATION_TYPE_DEVICE);
        prop.set(JAVA_INT, 12, device);
        // CUmemAccessDesc (12 bytes): location {type, id}, flags
        access = host.allocate(16, 8);
        access.set(JAVA_INT, 0, LOCATION_TYPE_DEVICE);
        access.set(JAVA_INT, 4, device);
        access.set(JAVA_INT, 8, ACCESS_READ_WRITE);
        try {
            granularity = driver.memAllocationGranularity(prop);
            reserved = roundUp(driver.memInfo()[1], granularity);
            base = driver.memAddressReserve(reserved, granularity);
            virtual = true;
        } catch (CudaException e) {
            fallBack(e.getMessage());
        }
    }

    private void fallBack(String why) {
        if (prop != null) { // the device has virtual memory management, yet it failed: say so
            System.err.println("cuda: device memory falls back to one cuMemAlloc per range: " + why);
        }
        virtual = false;
    }

    /** {@code bytes} of device memory (contents undefined), 256-byte aligned. */
    long allocate(long bytes) {
        long size = roundUp(Math.max(bytes, 1), ALIGNMENT);
        ArrayDeque<Long> same = freed.get(size);
        long address;
        if (same != null && !same.isEmpty()) {
            address = same.pop();
        } else if (virtual && (top + size <= mapped || grow(top + size))) {
            address = base + top;
            top += size;
        } else {
            address = driver.memAlloc(size);
            allocations.add(address);
        }
        handedOut += size;
        return address;
    }

    /**
     * Backs the addresses up to {@code end} with physical memory. False when the first mapping
     * failed for another reason than memory: the arena has then fallen back to cuMemAlloc.
     */
    private boolean grow(long end) {
        if (end > reserved) {
            throw new CudaException("device memory arena: " + (end - top) + " more bytes do not fit the device (" + top + " of "
                    + reserved + " in use)", CudaDriver.ERROR_OUT_OF_MEMORY);
        }
        long bytes = roundUp(end - mapped, granularity);
        long address = base + mapped;
        long handle;
        try {
            handle = driver.memCreate(bytes, prop);
        } catch (CudaException e) {
            return failedFirst(e);
        }
        try {
            driver.memMap(address, bytes, handle);
        } catch (CudaException e) {
            driver.memRelease(handle);
            return failedFirst(e);
        }
        driver.memRelease(handle); // the mapping keeps the memory until it is unmapped
        mappings.add(new long[] {address, bytes});
        try {
            driver.memSetAccess(address, bytes, access);
        } catch (CudaException e) {
            return failedFirst(e);
        }
        mapped += bytes;
        return true;
    }

    private boolean failedFirst(CudaException e) {
        if (mapped > 0 || e.status() == CudaDriver.ERROR_OUT_OF_MEMORY) {
            throw e;
        }
        releaseVirtual();
        fallBack(e.getMessage());
        return false;
    }

    /** Gives a range of {@link #allocate}({@code bytes}) back for reuse. */
    void free(long address, long bytes) {
        long size = roundUp(Math.max(bytes, 1), ALIGNMENT);
        handedOut -= size;
        freed.computeIfAbsent(size, s -> new ArrayDeque<>()).push(address);
    }

    /** Bytes handed out and not given back. */
    long inUse() {
        return handedOut;
    }

    /** Call with the stream idle (the backend synchronizes before closing). */
    @Override
    public void close() {
        if (virtual) {
            releaseVirtual();
        }
        for (long address : allocations) {
            driver.memFree(address);
        }
        allocations.clear();
        freed.clear();
        host.close();
    }

    private void releaseVirtual() {
        for (long[] m : mappings) {
            driver.memUnmap(m[0], m[1]);
        }
        mappings.clear();
        if (reserved > 0) {
            driver.memAddressFree(base, reserved);
        }
        reserved = mapped = top = 0;
    }

    private static long roundUp(long value, long multiple) {
        return (value + multiple - 1) / multiple * multiple;
    }
}
