package io.tinyllamaj.kernels.cuda;

/**
 * A device buffer an op reuses from call to call (token ids, partial sums, a cast operand), grown
 * when a call needs more: the old range goes back to the arena, the new one is at least twice as
 * large.
 */
final class Scratch {

    private final DeviceArena arena;
    private long address;
    private long bytes;

    Scratch(DeviceArena arena) {
        this.arena = arena;
    }

    /** The buffer's address, with room for at least {@code needed} bytes (0 while nothing was ever needed). */
    long atLeast(long needed) {
        if (bytes >= needed) {
            return address;
        }
        if (address != 0) {
            arena.free(address, bytes);
        }
        bytes = Math.max(needed, bytes * 2);
        address = arena.allocate(bytes);
        return address;
    }
}
