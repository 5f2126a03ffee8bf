package io.tinyllamaj.trainer.distributed;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** A failed rank's line reads as one process's error line does: the problem, not a Java class name. */
class RanksTest {

    @Test
    void aFailedRankNamesTheProblemWithoutItsExceptionClass() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        new Ranks(SingleRankCollectives.INSTANCE, null, null, new PrintStream(err, true, StandardCharsets.UTF_8))
                .abort(new IllegalStateException("run directory /r is in use: pid 7 holds /r/.lock"));
        assertEquals("rank 0 of 1 failed: run directory /r is in use: pid 7 holds /r/.lock\n", err.toString(StandardCharsets.UTF_8));
        err.reset();
        new Ranks(SingleRankCollectives.INSTANCE, null, null, new PrintStream(err, true, StandardCharsets.UTF_8))
                .abort(new java.io.UncheckedIOException(new IOException("writing /r/adam_v.f32 failed: No space left on device")));
        assertEquals("rank 0 of 1 failed: writing /r/adam_v.f32 failed: No space left on device\n", err.toString(StandardCharsets.UTF_8));
    }
}
