package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.MemorySegment;

/**
 * What the op families of one backend share: the driver, the one stream all work goes to, the
 * kernels' module, the device memory and its tensors, and the staging of small uploads.
 */
record Gpu(CudaDriver driver, MemorySegment stream, KernelModule kernels, DeviceArena arena, CudaMemory memory,
           HostStaging staging) {
}
