package io.tinyllamaj.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CUDA backend's system properties: the values they take, and one line for any other. */
class CudaSettingsTest {

    @Test
    void attentionKernelsByName() {
        assertEquals(CudaBackend.Attention.PLAIN, CudaBackend.attention("plain"));
        assertEquals(CudaBackend.Attention.MMA_SM80, CudaBackend.attention("MMA"));
        assertEquals(CudaBackend.Attention.WGMMA_SM90, CudaBackend.attention("wgmma"));
        assertEquals(CudaBackend.Attention.CUDNN, CudaBackend.attention("cuDNN"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaBackend.attention("flash3"));
        assertEquals("tinyllamaj.cuda.attention must be plain, mma, wgmma, cudnn or auto, got 'flash3'", e.getMessage());
    }

    @Test
    void activationStorageByName() {
        assertTrue(CudaBackend.bf16Activations("bf16"));
        assertFalse(CudaBackend.bf16Activations("FP32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaBackend.bf16Activations("fp16"));
        assertEquals("tinyllamaj.cuda.activations must be bf16 or fp32, got 'fp16'", e.getMessage());
    }

    @Test
    void optionsDefaultToAutoBf16AndTuning() {
        assertEquals(new CudaBackend.Options(CudaBackend.Attention.AUTO, true, true, null), CudaBackend.Options.fromSystemProperties());
    }

    /** FP8 tensor cores by compute capability (NVIDIA's table): A100 sm_80 and A10 sm_86 have none; L4 sm_89, H100 sm_90, B200 sm_100 have them. */
    @Test
    void fp8NeedsComputeCapabilityEightNineOrNewer() {
        assertFalse(CudaBackend.fp8TensorCores(8, 0));
        assertFalse(CudaBackend.fp8TensorCores(8, 6));
        assertFalse(CudaBackend.fp8TensorCores(7, 5));
        assertTrue(CudaBackend.fp8TensorCores(8, 9));
        assertTrue(CudaBackend.fp8TensorCores(9, 0));
        assertTrue(CudaBackend.fp8TensorCores(10, 0));
    }

    /** cuBLASLt's FP8 form wants every FP8 operand's leading dimension a multiple of 16; other shapes (decoding one token) run in bf16. */
    @Test
    void fp8TakesShapesWhoseSizesAreMultiplesOfSixteen() {
        assertTrue(Matmul.fp8Fits(16384, 2048, 2560));
        assertTrue(Matmul.fp8Fits(16384, 5632, 2048));
        assertFalse(Matmul.fp8Fits(1, 2048, 2560));
        assertFalse(Matmul.fp8Fits(64, 2048, 1000));
        assertFalse(Matmul.fp8Fits(64, 70, 128));
    }

    @Test
    void matmulTuningByName() {
        assertTrue(CudaBackend.matmulTuning("on"));
        assertFalse(CudaBackend.matmulTuning("OFF"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaBackend.matmulTuning("yes"));
        assertEquals("tinyllamaj.cuda.matmulTuning must be on or off, got 'yes'", e.getMessage());
    }
}
