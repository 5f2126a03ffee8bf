package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Backend;

import java.util.Locale;

/**
 * Refuses what cannot fit before any of it is built: a shape of a billion layers would otherwise
 * spend minutes building per-layer tables, deaf to signals, and then die out of memory.
 */
public final class MemoryBudget {

    /**
     * Heap per block beyond its parameters: layout entries, parameter and Hugging Face tensor
     * names, tensor handles (about 3 KiB measured while a Hugging Face checkpoint loads), rounded
     * up. It matters only for shapes of very many tiny blocks, whose tables outweigh their parameters.
     */
    static final long TABLE_BYTES_PER_LAYER = 4096;

    private static final String[] UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    private MemoryBudget() {
    }

    /** The parameters in fp32 and the per-block tables must fit the backend. */
    static void requireModel(Backend backend, LlamaConfig c) {
        double bytes = (double) Float.BYTES * c.parameterCount() + (double) TABLE_BYTES_PER_LAYER * c.layers();
        require(backend, bytes, String.format(Locale.ROOT, "model shape (%s) has %,d parameters; with its per-layer tables it needs",
                c.describe(), c.parameterCount()));
    }

    /** Throws "{@code subjectNeeds} 7.1 TiB, and the cpu backend holds at most 5.9 GiB" when bytes exceed the backend's memory. */
    static void require(Backend backend, double bytes, String subjectNeeds) {
        long capacity = backend.memoryCapacity();
        if (bytes > capacity) {
            throw new IllegalArgumentException(subjectNeeds + " " + format(bytes) + ", and the " + backend.name()
                    + " backend holds at most " + format(capacity));
        }
    }

    /** Binary units with one decimal: "7.1 TiB". */
    public static String format(double bytes) {
        int unit = 0;
        while (bytes >= 1024 && unit < UNITS.length - 1) {
            bytes /= 1024;
            unit++;
        }
        return unit == 0 ? String.format(Locale.ROOT, "%.0f B", bytes) : String.format(Locale.ROOT, "%.1f %s", bytes, UNITS[unit]);
    }
}
