package io.tinyllamaj.kernels.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The module loaded from the {@code cuda/tinyllama.fatbin} classpath resource (built by nvcc
 * from {@code kernels/src/main/cuda}) and a launcher. Functions are looked up once by name.
 * Kernel arguments are passed as Java values: {@link Long} for device pointers and
 * {@code long long}, {@link Integer} for {@code int}, {@link Float}, {@link Double}; each gets an
 * 8-byte slot of a parameter block reused by every launch (cuLaunchKernel copies it).
 */
final class CudaKernels implements AutoCloseable {

    static final String RESOURCE = "/cuda/tinyllama.fatbin";
    private static final int MAX_ARGS = 24;

    private final CudaDriver driver;
    private final MemorySegment stream;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment module;
    private final Map<String, MemorySegment> functions = new HashMap<>();
    private final MemorySegment values;
    private final MemorySegment pointers;

    CudaKernels(CudaDriver driver, MemorySegment stream, byte[] fatbin) {
        this.driver = driver;
        this.stream = stream;
        MemorySegment image = arena.allocate(fatbin.length + 1L, 16);
        MemorySegment.copy(fatbin, 0, image, JAVA_BYTE, 0, fatbin.length);
        module = driver.moduleLoadData(image);
        values = arena.allocate(8L * MAX_ARGS, 8);
        pointers = arena.allocate(ADDRESS, MAX_ARGS);
        for (int i = 0; i < MAX_ARGS; i++) {
            pointers.setAtIndex(ADDRESS, i, values.asSlice(8L * i, 8));
        }
    }

    static byte[] readFatbin() {
        try (InputStream in = CudaKernels.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new CudaUnavailableException("CUDA backend unavailable: this build has no CUDA kernels (" + RESOURCE.substring(1)
                        + " is not on the classpath: nvcc was not found when the kernels module was built)");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new CudaUnavailableException("CUDA backend unavailable: cannot read " + RESOURCE + ": " + e.getMessage(), e);
        }
    }

    private MemorySegment function(String name) {
        return functions.computeIfAbsent(name, n -> driver.moduleGetFunction(module, n));
    }

    /** Looks every named kernel up now, so a stale fatbin fails at start-up and not mid-step. */
    void preload(String... names) {
        for (String name : names) {
            function(name);
        }
    }

    /** Raises a kernel's dynamic shared memory limit above the default 48 KB. */
    void allowDynamicShared(String name, int bytes) {
        driver.allowDynamicShared(name, function(name), bytes);
    }

    void launch(String name, int gridX, int gridY, int gridZ, int block, int sharedBytes, Object... args) {
        if (args.length > MAX_ARGS) {
            throw new IllegalArgumentException(name + ": at most " + MAX_ARGS + " kernel arguments");
        }
        for (int i = 0; i < args.length; i++) {
            long at = 8L * i;
            values.set(JAVA_LONG, at, 0L);
            switch (args[i]) {
                case Long l -> values.set(JAVA_LONG, at, l);
                case Integer n -> values.set(JAVA_INT, at, n);
                case Float f -> values.set(JAVA_FLOAT, at, f);
                case Double d -> values.set(JAVA_DOUBLE, at, d);
                default -> throw new IllegalArgumentException(name + ": unsupported kernel argument " + args[i]);
            }
        }
        driver.launchKernel(name, function(name), gridX, gridY, gridZ, block, sharedBytes, stream, pointers);
    }

    /** A 1-D grid-stride launch over n elements. */
    void launchFlat(String name, long n, Object... args) {
        int block = 256;
        long blocks = Math.max(1, Math.min((n + block - 1) / block, 16384));
        launch(name, (int) blocks, 1, 1, block, 0, args);
    }

    @Override
    public void close() {
        driver.moduleUnload(module);
        arena.close();
    }
}
