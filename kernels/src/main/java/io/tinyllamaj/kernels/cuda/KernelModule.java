package io.tinyllamaj.kernels.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The module loaded from the {@code cuda/tinyllama.fatbin} classpath resource (built by nvcc from
 * {@code kernels/src/main/cuda}) and the one launcher of its kernels. Each kernel family's class
 * looks its kernels up here once, by their {@link KernelSignature}, and reads the launch geometry
 * its kernels define (rows per block, threads, shared bytes) from the module's constants, so that
 * geometry has one definition, in the .cu file.
 */
final class KernelModule implements AutoCloseable {

    static final String RESOURCE = "/cuda/tinyllama.fatbin";
    private static final int MAX_ARGS = 24;

    private final CudaDriver driver;
    private final MemorySegment stream;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment module;
    private final MemorySegment pointers;
    private final KernelArgs args;

    KernelModule(CudaDriver driver, MemorySegment stream, byte[] fatbin) {
        this.driver = driver;
        this.stream = stream;
        MemorySegment image = arena.allocate(fatbin.length + 1L, 16);
        MemorySegment.copy(fatbin, 0, image, JAVA_BYTE, 0, fatbin.length);
        module = driver.moduleLoadData(image);
        MemorySegment values = arena.allocate(8L * MAX_ARGS, 8);
        pointers = arena.allocate(ADDRESS, MAX_ARGS);
        for (int i = 0; i < MAX_ARGS; i++) {
            pointers.setAtIndex(ADDRESS, i, values.asSlice(8L * i, 8));
        }
        args = new KernelArgs(this, values);
    }

    static byte[] readFatbin() {
        try (InputStream in = KernelModule.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new CudaUnavailableException("CUDA backend unavailable: this build has no CUDA kernels (" + RESOURCE.substring(1)
                        + " is not on the classpath: nvcc was not found when the kernels module was built)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new CudaUnavailableException("CUDA backend unavailable: cannot read " + RESOURCE + ": " + e.getMessage(), e);
        }
    }

    /** Kernel {@code name} (one of the signature's names), looked up now: a stale fatbin fails at start-up, not mid-step. */
    Kernel kernel(KernelSignature signature, String name) {
        if (!signature.names().contains(name)) {
            throw new IllegalArgumentException(name + " is not among the kernels of its signature " + signature.names());
        }
        if (signature.params().size() > MAX_ARGS) {
            throw new IllegalArgumentException(name + ": at most " + MAX_ARGS + " kernel arguments");
        }
        return new Kernel(this, name, signature, driver.moduleGetFunction(module, name));
    }

    /** The kernel of a single-name signature. */
    Kernel kernel(KernelSignature signature) {
        return kernel(signature, signature.names().getFirst());
    }

    /** The value of the module's {@code __constant__ int name}. */
    int constant(String name) {
        long[] global = driver.moduleGetGlobal(module, name);
        if (global[1] != Integer.BYTES) {
            throw new CudaException("module constant " + name + " has " + global[1] + " bytes, not an int's 4");
        }
        try (Arena confined = Arena.ofConfined()) {
            MemorySegment host = confined.allocate(JAVA_INT);
            driver.memcpyDtoHAsync(host, global[0], Integer.BYTES, stream);
            driver.streamSynchronize(stream);
            return host.get(JAVA_INT, 0);
        }
    }

    /** Raises a kernel's dynamic shared memory limit above the default 48 KB. */
    void allowDynamicShared(Kernel kernel, int bytes) {
        driver.allowDynamicShared(kernel.name, kernel.function, bytes);
    }

    KernelArgs args(Kernel kernel) {
        return args.start(kernel);
    }

    void launch(Kernel kernel, int gridX, int gridY, int gridZ, int block, int sharedBytes) {
        driver.launchKernel(kernel.name, kernel.function, gridX, gridY, gridZ, block, sharedBytes, stream, pointers);
    }

    @Override
    public void close() {
        driver.moduleUnload(module);
        arena.close();
    }
}
