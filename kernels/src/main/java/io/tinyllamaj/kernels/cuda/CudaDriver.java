package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * FFM bindings to the CUDA driver API ({@code libcuda.so.1}): the calls the backend needs,
 * each looked up once. Every call's CUresult is checked; a failure becomes a
 * {@link CudaException} naming the call, the error's name and its description.
 * Device pointers are Java longs (CUdeviceptr); handles (context, stream, module, function,
 * event) are addresses.
 */
public final class CudaDriver {

    private static final String LIB = "libcuda.so.1";
    /** CUdevice_attribute values. */
    public static final int COMPUTE_CAPABILITY_MAJOR = 75, COMPUTE_CAPABILITY_MINOR = 76, VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED = 102;
    /** CUresult of a failed allocation. */
    public static final int ERROR_OUT_OF_MEMORY = 2;
    private static final int EVENT_DISABLE_TIMING = 0x2;
    private static final int FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    private final MethodHandle cuInit, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute,
            cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuGetErrorName, cuGetErrorString,
            cuStreamCreate, cuStreamDestroy, cuStreamSynchronize, cuStreamWaitEvent, cuMemAlloc, cuMemFree, cuMemGetInfo,
            cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD32Async, cuMemsetD16Async,
            cuModuleLoadData, cuModuleUnload, cuModuleGetFunction, cuModuleGetGlobal, cuFuncSetAttribute, cuLaunchKernel,
            cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy, cuMemHostAlloc, cuMemFreeHost,
            cuMemGetAllocationGranularity, cuMemAddressReserve, cuMemAddressFree, cuMemCreate, cuMemRelease, cuMemMap, cuMemUnmap,
            cuMemSetAccess;

    private CudaDriver(SymbolLookup lib) {
        cuInit = Native.status(lib, LIB, "cuInit", JAVA_INT);
        cuDeviceGetCount = Native.status(lib, LIB, "cuDeviceGetCount", ADDRESS);
        cuDeviceGet = Native.status(lib, LIB, "cuDeviceGet", ADDRESS, JAVA_INT);
        cuDeviceGetName = Native.status(lib, LIB, "cuDeviceGetName", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceGetAttribute = Native.status(lib, LIB, "cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuDevicePrimaryCtxRetain = Native.status(lib, LIB, "cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRelease = Native.status(lib, LIB, "cuDevicePrimaryCtxRelease_v2", JAVA_INT);
        cuCtxSetCurrent = Native.status(lib, LIB, "cuCtxSetCurrent", ADDRESS);
        cuGetErrorName = Native.status(lib, LIB, "cuGetErrorName", JAVA_INT, ADDRESS);
        cuGetErrorString = Native.status(lib, LIB, "cuGetErrorString", JAVA_INT, ADDRESS);
        cuStreamCreate = Native.status(lib, LIB, "cuStreamCreate", ADDRESS, JAVA_INT);
        cuStreamDestroy = Native.status(lib, LIB, "cuStreamDestroy_v2", ADDRESS);
        cuStreamSynchronize = Native.status(lib, LIB, "cuStreamSynchronize", ADDRESS);
        cuStreamWaitEvent = Native.status(lib, LIB, "cuStreamWaitEvent", ADDRESS, ADDRESS, JAVA_INT);
        cuMemAlloc = Native.status(lib, LIB, "cuMemAlloc_v2", ADDRESS, JAVA_LONG);
        cuMemFree = Native.status(lib, LIB, "cuMemFree_v2", JAVA_LONG);
        cuMemGetInfo = Native.status(lib, LIB, "cuMemGetInfo_v2", ADDRESS, ADDRESS);
        cuMemHostAlloc = Native.status(lib, LIB, "cuMemHostAlloc", ADDRESS, JAVA_LONG, JAVA_INT);
        cuMemFreeHost = Native.status(lib, LIB, "cuMemFreeHost", ADDRESS);
        cuMemcpyHtoDAsync = Native.status(lib, LIB, "cuMemcpyHtoDAsync_v2", JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS);
        cuMemcpyDtoHAsync = Native.status(lib, LIB, "cuMemcpyDtoHAsync_v2", ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemcpyDtoDAsync = Native.status(lib, LIB, "cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemsetD32Async = Native.status(lib, LIB, "cuMemsetD32Async", JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS);
        cuMemsetD16Async = Native.status(lib, LIB, "cuMemsetD16Async", JAVA_LONG, JAVA_SHORT, JAVA_LONG, ADDRESS);
        cuModuleLoadData = Native.status(lib, LIB, "cuModuleLoadData", ADDRESS, ADDRESS);
        cuModuleUnload = Native.status(lib, LIB, "cuModuleUnload", ADDRESS);
        cuModuleGetFunction = Native.status(lib, LIB, "cuModuleGetFunction", ADDRESS, ADDRESS, ADDRESS);
        cuModuleGetGlobal = Native.status(lib, LIB, "cuModuleGetGlobal_v2", ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        cuFuncSetAttribute = Native.status(lib, LIB, "cuFuncSetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuLaunchKernel = Native.status(lib, LIB, "cuLaunchKernel", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        cuEventCreate = Native.status(lib, LIB, "cuEventCreate", ADDRESS, JAVA_INT);
        cuEventRecord = Native.status(lib, LIB, "cuEventRecord", ADDRESS, ADDRESS);
        cuEventSynchronize = Native.status(lib, LIB, "cuEventSynchronize", ADDRESS);
        cuEventElapsedTime = Native.status(lib, LIB, "cuEventElapsedTime_v2", ADDRESS, ADDRESS, ADDRESS);
        cuEventDestroy = Native.status(lib, LIB, "cuEventDestroy_v2", ADDRESS);
        cuMemGetAllocationGranularity = Native.status(lib, LIB, "cuMemGetAllocationGranularity", ADDRESS, ADDRESS, JAVA_INT);
        cuMemAddressReserve = Native.status(lib, LIB, "cuMemAddressReserve", ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        cuMemAddressFree = Native.status(lib, LIB, "cuMemAddressFree", JAVA_LONG, JAVA_LONG);
        cuMemCreate = Native.status(lib, LIB, "cuMemCreate", ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG);
        cuMemRelease = Native.status(lib, LIB, "cuMemRelease", JAVA_LONG);
        cuMemMap = Native.status(lib, LIB, "cuMemMap", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        cuMemUnmap = Native.status(lib, LIB, "cuMemUnmap", JAVA_LONG, JAVA_LONG);
        cuMemSetAccess = Native.status(lib, LIB, "cuMemSetAccess", JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG);
    }

    /** Opens libcuda.so.1 and runs cuInit; a CudaUnavailableException says in one line why not. */
    public static CudaDriver load() {
        SymbolLookup lib = Native.open(LIB, "TINYLLAMA_LIBCUDA", "/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/lib64");
        if (lib == null) {
            throw new CudaUnavailableException("CUDA backend unavailable: " + LIB + " (the NVIDIA driver) is not installed on this machine");
        }
        CudaDriver driver = new CudaDriver(lib);
        try {
            driver.init();
        } catch (CudaException e) {
            throw new CudaUnavailableException("CUDA backend unavailable: " + e.getMessage(), e);
        }
        return driver;
    }

    void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(call + " failed: " + errorText(status), status);
        }
    }

    private String errorText(int status) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocate(ADDRESS), text = arena.allocate(ADDRESS);
            int a = (int) cuGetErrorName.invokeExact(status, name);
            int b = (int) cuGetErrorString.invokeExact(status, text);
            String n = a == 0 ? name.get(ADDRESS, 0).reinterpret(256).getString(0) : "CUresult " + status;
            String s = b == 0 ? text.get(ADDRESS, 0).reinterpret(1024).getString(0) : "";
            return n + (s.isEmpty() ? "" : " (" + s + ")");
        } catch (Throwable t) {
            return "CUresult " + status;
        }
    }

    private void init() {
        try {
            check("cuInit", (int) cuInit.invokeExact(0));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(JAVA_INT);
            check("cuDeviceGetCount", (int) cuDeviceGetCount.invokeExact(count));
            return count.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public int device(int ordinal) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment device = arena.allocate(JAVA_INT);
            check("cuDeviceGet(" + ordinal + ")", (int) cuDeviceGet.invokeExact(device, ordinal));
            return device.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public String deviceName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocate(256);
            check("cuDeviceGetName", (int) cuDeviceGetName.invokeExact(name, 256, device));
            return name.getString(0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** cuDeviceGetAttribute, e.g. {@link #COMPUTE_CAPABILITY_MAJOR}. */
    public int deviceAttribute(int attribute, int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(JAVA_INT);
            check("cuDeviceGetAttribute(" + attribute + ")", (int) cuDeviceGetAttribute.invokeExact(value, attribute, device));
            return value.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Retains the device's primary context and makes it current on the calling thread. */
    public MemorySegment retainPrimaryContext(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ctx = arena.allocate(ADDRESS);
            check("cuDevicePrimaryCtxRetain", (int) cuDevicePrimaryCtxRetain.invokeExact(ctx, device));
            MemorySegment context = ctx.get(ADDRESS, 0);
            setCurrent(context);
            return context;
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void setCurrent(MemorySegment context) {
        try {
            check("cuCtxSetCurrent", (int) cuCtxSetCurrent.invokeExact(context));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void releasePrimaryContext(int device) {
        try {
            check("cuDevicePrimaryCtxRelease", (int) cuDevicePrimaryCtxRelease.invokeExact(device));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public MemorySegment streamCreate() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stream = arena.allocate(ADDRESS);
            check("cuStreamCreate", (int) cuStreamCreate.invokeExact(stream, 0));
            return stream.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void streamDestroy(MemorySegment stream) {
        try {
            check("cuStreamDestroy", (int) cuStreamDestroy.invokeExact(stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void streamSynchronize(MemorySegment stream) {
        try {
            check("cuStreamSynchronize", (int) cuStreamSynchronize.invokeExact(stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public long memAlloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ptr = arena.allocate(JAVA_LONG);
            check("cuMemAlloc(" + bytes + " bytes)", (int) cuMemAlloc.invokeExact(ptr, bytes));
            return ptr.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memFree(long ptr) {
        try {
            check("cuMemFree", (int) cuMemFree.invokeExact(ptr));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /**
     * {@code bytes} of page-locked host memory: a copy from it to the device is asynchronous (one
     * from pageable memory waits for the stream to drain first).
     */
    public MemorySegment memHostAlloc(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ptr = arena.allocate(ADDRESS);
            check("cuMemHostAlloc(" + bytes + " bytes)", (int) cuMemHostAlloc.invokeExact(ptr, bytes, 0));
            return ptr.get(ADDRESS, 0).reinterpret(bytes);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memFreeHost(MemorySegment host) {
        try {
            check("cuMemFreeHost", (int) cuMemFreeHost.invokeExact(host));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** {free, total} bytes of device memory. */
    public long[] memInfo() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment free = arena.allocate(JAVA_LONG), total = arena.allocate(JAVA_LONG);
            check("cuMemGetInfo", (int) cuMemGetInfo.invokeExact(free, total));
            return new long[] {free.get(JAVA_LONG, 0), total.get(JAVA_LONG, 0)};
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memcpyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyHtoDAsync", (int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memcpyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoHAsync", (int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memcpyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoDAsync", (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memsetD32Async(long dst, int value, long count, MemorySegment stream) {
        try {
            check("cuMemsetD32Async", (int) cuMemsetD32Async.invokeExact(dst, value, count, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memsetD16Async(long dst, short value, long count, MemorySegment stream) {
        try {
            check("cuMemsetD16Async", (int) cuMemsetD16Async.invokeExact(dst, value, count, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public MemorySegment moduleLoadData(MemorySegment image) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment module = arena.allocate(ADDRESS);
            check("cuModuleLoadData", (int) cuModuleLoadData.invokeExact(module, image));
            return module.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void moduleUnload(MemorySegment module) {
        try {
            check("cuModuleUnload", (int) cuModuleUnload.invokeExact(module));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public MemorySegment moduleGetFunction(MemorySegment module, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment function = arena.allocate(ADDRESS);
            check("cuModuleGetFunction(" + name + ")", (int) cuModuleGetFunction.invokeExact(function, module, arena.allocateFrom(name)));
            return function.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** The address and size of a module's global (a {@code __device__} or {@code __constant__} variable) named {@code name}. */
    public long[] moduleGetGlobal(MemorySegment module, String name) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address = arena.allocate(JAVA_LONG), bytes = arena.allocate(JAVA_LONG);
            check("cuModuleGetGlobal(" + name + ")", (int) cuModuleGetGlobal.invokeExact(address, bytes, module, arena.allocateFrom(name)));
            return new long[] {address.get(JAVA_LONG, 0), bytes.get(JAVA_LONG, 0)};
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    // ---- virtual memory management: a reserved address range backed by physical memory on demand ----

    /** The granularity (bytes) that sizes and addresses of {@link #memCreate} allocations with {@code prop} (a CUmemAllocationProp) are multiples of. */
    public long memAllocationGranularity(MemorySegment prop) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment granularity = arena.allocate(JAVA_LONG);
            check("cuMemGetAllocationGranularity", (int) cuMemGetAllocationGranularity.invokeExact(granularity, prop, 0)); // MINIMUM
            return granularity.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Reserves {@code bytes} of device virtual addresses, aligned to {@code alignment}; no memory backs them yet. */
    public long memAddressReserve(long bytes, long alignment) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ptr = arena.allocate(JAVA_LONG);
            check("cuMemAddressReserve(" + bytes + " bytes)", (int) cuMemAddressReserve.invokeExact(ptr, bytes, alignment, 0L, 0L));
            return ptr.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memAddressFree(long address, long bytes) {
        try {
            check("cuMemAddressFree", (int) cuMemAddressFree.invokeExact(address, bytes));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** {@code bytes} of physical device memory as described by {@code prop}; returns the allocation's handle. */
    public long memCreate(long bytes, MemorySegment prop) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment handle = arena.allocate(JAVA_LONG);
            check("cuMemCreate(" + bytes + " bytes)", (int) cuMemCreate.invokeExact(handle, bytes, prop, 0L));
            return handle.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Drops the handle; the memory stays while it is mapped. */
    public void memRelease(long handle) {
        try {
            check("cuMemRelease", (int) cuMemRelease.invokeExact(handle));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memMap(long address, long bytes, long handle) {
        try {
            check("cuMemMap(" + bytes + " bytes)", (int) cuMemMap.invokeExact(address, bytes, 0L, handle, 0L));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void memUnmap(long address, long bytes) {
        try {
            check("cuMemUnmap", (int) cuMemUnmap.invokeExact(address, bytes));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Grants the access in {@code desc} (one CUmemAccessDesc) to a mapped range. */
    public void memSetAccess(long address, long bytes, MemorySegment desc) {
        try {
            check("cuMemSetAccess", (int) cuMemSetAccess.invokeExact(address, bytes, desc, 1L));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Lets a kernel launch with more than the default 48 KB of dynamic shared memory. */
    public void allowDynamicShared(String name, MemorySegment function, int bytes) {
        try {
            check("cuFuncSetAttribute(" + name + ", max dynamic shared " + bytes + ")",
                    (int) cuFuncSetAttribute.invokeExact(function, FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void launchKernel(String name, MemorySegment function, int gridX, int gridY, int gridZ, int blockX,
                             int sharedBytes, MemorySegment stream, MemorySegment params) {
        try {
            int status = (int) cuLaunchKernel.invokeExact(function, gridX, gridY, gridZ, blockX, 1, 1, sharedBytes,
                    stream, params, MemorySegment.NULL);
            if (status != 0) {
                check("cuLaunchKernel(" + name + ", grid " + gridX + "x" + gridY + "x" + gridZ + ", block " + blockX + ")", status);
            }
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public MemorySegment eventCreate() {
        return eventCreate(0);
    }

    /** An event that only orders work (CU_EVENT_DISABLE_TIMING: cheaper to record and wait on). */
    public MemorySegment orderingEventCreate() {
        return eventCreate(EVENT_DISABLE_TIMING);
    }

    private MemorySegment eventCreate(int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment event = arena.allocate(ADDRESS);
            check("cuEventCreate", (int) cuEventCreate.invokeExact(event, flags));
            return event.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void eventRecord(MemorySegment event, MemorySegment stream) {
        try {
            check("cuEventRecord", (int) cuEventRecord.invokeExact(event, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Work queued on {@code stream} from now on waits (on the device, not here) for the event's last record. */
    public void streamWaitEvent(MemorySegment stream, MemorySegment event) {
        try {
            check("cuStreamWaitEvent", (int) cuStreamWaitEvent.invokeExact(stream, event, 0));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Waits until the work queued before the event's last record has run. */
    public void eventSynchronize(MemorySegment event) {
        try {
            check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(event));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /** Milliseconds between two recorded events, waiting for the second. */
    public float eventElapsedMillis(MemorySegment start, MemorySegment end) {
        try (Arena arena = Arena.ofConfined()) {
            check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(end));
            MemorySegment ms = arena.allocate(JAVA_FLOAT);
            check("cuEventElapsedTime", (int) cuEventElapsedTime.invokeExact(ms, start, end));
            return ms.get(JAVA_FLOAT, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    public void eventDestroy(MemorySegment event) {
        try {
            check("cuEventDestroy", (int) cuEventDestroy.invokeExact(event));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }
}
