package io.tinyllamaj.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs everywhere (CI has no GPU): creating a CudaBackend either works, and then a tiny op
 * round-trips, or fails with one line that says why. The op-by-op check against the CPU
 * backend is {@link CudaOpCheck}, run on a GPU host by scripts/gpu-check.
 */
class CudaBackendAvailabilityTest {

    @Test
    void createsOrSaysWhyNotInOneLine() {
        CudaBackend backend;
        try {
            backend = CudaBackend.create();
        } catch (CudaUnavailableException e) {
            String message = e.getMessage();
            assertTrue(message.startsWith("CUDA backend unavailable: "), message);
            assertFalse(message.contains("\n"), message);
            return;
        }
        try (backend) {
            var t = backend.allocate(3);
            backend.upload(t, new float[] {1, 2, 3}, 0, 3);
            backend.scale(t, 2f);
            assertEquals(56.0, backend.sumOfSquares(t), 1e-9);
        }
    }

    @Test
    void theBuildShipsTheFatbinWhereNvccExists() {
        boolean nvcc = System.getenv("PATH") != null && java.util.Arrays.stream(System.getenv("PATH").split(":"))
                .anyMatch(dir -> java.nio.file.Files.isExecutable(java.nio.file.Path.of(dir, "nvcc")));
        boolean fatbin = KernelModule.class.getResource(KernelModule.RESOURCE) != null;
        if (nvcc) {
            assertTrue(fatbin, "nvcc is on the PATH but " + KernelModule.RESOURCE + " is not on the classpath");
        }
    }
}
