package io.tinyllamaj.model;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The stream entered at a position against the JDK's SplittableRandom drawn from its start. */
class SeededStreamTest {

    @Test
    void fromTheStartItIsSplittableRandomsStream() {
        for (long seed : new long[] {0, 1, 3407, -7, Long.MIN_VALUE, 0x9E3779B97F4A7C15L}) {
            SplittableRandom jdk = new SplittableRandom(seed);
            SeededStream ours = SeededStream.at(seed, 0);
            for (int i = 0; i < 1000; i++) {
                if (i % 2 == 0) {
                    assertEquals(jdk.nextLong(), ours.nextLong(), "seed " + seed + ", value " + i);
                } else {
                    assertEquals(Double.doubleToRawLongBits(jdk.nextDouble()), Double.doubleToRawLongBits(ours.nextDouble()),
                            "seed " + seed + ", value " + i);
                }
            }
        }
    }

    @Test
    void enteredAtAPositionItContinuesWhereTheJdkStreamIs() {
        long seed = 3407L ^ "layers.0.gate_up".hashCode() * 0x9E3779B97F4A7C15L;
        for (long position : new long[] {1, 2, 977, 1 << 20, (1 << 21) + 5}) {
            SplittableRandom jdk = new SplittableRandom(seed);
            for (long i = 0; i < position; i++) {
                jdk.nextLong();
            }
            SeededStream ours = SeededStream.at(seed, position);
            for (int i = 0; i < 100; i++) {
                assertEquals(Double.doubleToRawLongBits(jdk.nextDouble()), Double.doubleToRawLongBits(ours.nextDouble()),
                        "position " + position + " + " + i);
            }
        }
    }
}
