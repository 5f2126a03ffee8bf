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
        assertEquals(new CudaBackend.Options(CudaBackend.Attention.AUTO, true, true, false), CudaBackend.Options.fromSystemProperties());
    }

    @Test
    void matmulTuningByName() {
        assertTrue(CudaBackend.matmulTuning("on"));
        assertFalse(CudaBackend.matmulTuning("OFF"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaBackend.matmulTuning("yes"));
        assertEquals("tinyllamaj.cuda.matmulTuning must be on or off, got 'yes'", e.getMessage());
    }
}
