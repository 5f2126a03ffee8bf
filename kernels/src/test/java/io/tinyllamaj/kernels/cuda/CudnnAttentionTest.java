package io.tinyllamaj.kernels.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The host-side arithmetic of the cuDNN attention path (the graphs themselves run in the GPU checks). */
class CudnnAttentionTest {

    @Test
    void backwardGroupsKeepTheDeterministicWorkspaceWithinTheLimit() {
        // TinyLlama: 2 bytes x 32 heads x 2048^2 = 256 MiB a batch row, exactly the limit: one row at a time
        assertEquals(1, CudnnAttention.backwardGroup(8, 2048, 32));
        // t = 1000 rounds up to 1024: 2 x 32 x 1024^2 = 64 MiB a row; 4 rows = 256 MiB fit, 8 do not
        assertEquals(4, CudnnAttention.backwardGroup(8, 1000, 32));
        // 64 MiB a row, b = 6: 4 rows would fit but do not divide 6, so groups of 3
        assertEquals(3, CudnnAttention.backwardGroup(6, 1024, 32));
        // the demo's shape: 2 x 4 x 256^2 = 512 KiB a row, the whole batch at once
        assertEquals(8, CudnnAttention.backwardGroup(8, 256, 4));
        // a row over the limit on its own still runs, one at a time
        assertEquals(1, CudnnAttention.backwardGroup(2, 4096, 32));
    }

    @Test
    void coversSixteenByteRowsAndWholeGroups() {
        assertTrue(CudnnAttention.covers(64, 32, 4));
        assertTrue(CudnnAttention.covers(128, 8, 8));
        assertTrue(CudnnAttention.covers(16, 4, 2));
        assertFalse(CudnnAttention.covers(6, 4, 2));   // 12-byte rows
        assertFalse(CudnnAttention.covers(256, 4, 2)); // beyond the head sizes checked here
        assertFalse(CudnnAttention.covers(64, 6, 4));  // 6 heads do not group over 4
    }
}
