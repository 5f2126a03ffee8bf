package io.tinyllamaj.kernels.cuda;

import java.util.HashMap;
import java.util.Map;

/**
 * What fp8-mixed carries from a projection's forward to its backward, per site (a projection in a
 * layer; the caller names it): the amax of weight and input the forward measured, the FP8
 * transposed weight and input it kept for the input and weight gradients with their inverse
 * scales, and the addresses it read them at. Also the hand-over of an amax measured by the kernel that wrote a matmul's
 * operand just before it (RMSNorm, SwiGLU), good for the next FP8 matmul of that site only.
 *
 * <p>A site also keeps its weight's e4m3 copy (row-major, beside the transposed one) across
 * forwards: the micro-batches of one optimizer step read the same weights, so only the first casts
 * them. The copy stands until the backend writes anything the weight's bytes overlap (fill, copy,
 * accumulate, scale, release: {@link #written}) or writes parameters (upload, the matmuls' operand
 * cast, AdamW: {@link #allWritten}, since their values reach gathered copies of the weights that
 * lie elsewhere). The kernels' outputs are activations and gradients, never weights.
 */
final class Fp8Sites {

    /** Bytes between a site's amax slots and its two inverse scales: cuBLASLt wants a scale pointer aligned wider than 4 bytes. */
    private static final long SCALE_STRIDE = 256;

    private final Gpu gpu;
    private final Map<Integer, Site> sites = new HashMap<>();
    private Produced produced;

    /** The addresses and shape a site's forward read: its backward reuses what was measured and kept only for the same ones. */
    record Measured(long weight, long input, int n, int c, int oc) {
    }

    /** The bf16 weight [oc, c] at {@code address} whose e4m3 copies and scale a site holds. */
    record CastWeight(long address, int c, int oc) {

        boolean overlaps(long from, long bytes) {
            return from < address + (long) oc * c * 2 && address < from + bytes;
        }
    }

    private record Produced(int site, long address, boolean gradient) {
    }

    /**
     * One site's device state: amax slots (weight +0, input +4, output gradient +8 bytes), the
     * inverse scales of the kept weight and input, the kept copies.
     */
    static final class Site {
        private final long slots;
        private final Scratch keptWeight, keptWeightRows, keptInput;
        private Measured measured;
        private CastWeight cast;

        private Site(Gpu gpu) {
            slots = gpu.arena().allocate(2 * SCALE_STRIDE + Float.BYTES);
            keptWeight = new Scratch(gpu.arena());
            keptWeightRows = new Scratch(gpu.arena());
            keptInput = new Scratch(gpu.arena());
        }

        long weightAmax() {
            return slots;
        }

        long inputAmax() {
            return slots + Integer.BYTES;
        }

        long gradientAmax() {
            return slots + 2 * Integer.BYTES;
        }

        long weightScale() {
            return slots + SCALE_STRIDE;
        }

        long inputScale() {
            return slots + 2 * SCALE_STRIDE;
        }

        /** The buffer of the kept e4m3 transposed weight, at least {@code bytes} long. */
        long keptWeight(long bytes) {
            return keptWeight.atLeast(bytes);
        }

        /** The buffer of the kept e4m3 weight as it is (row-major [oc, c]), at least {@code bytes} long. */
        long keptWeightRows(long bytes) {
            return keptWeightRows.atLeast(bytes);
        }

        /** Whether the kept weight copies and scale are those of the bf16 {@code weight} [oc, c] as it is now. */
        boolean holds(CudaTensor weight, int c, int oc) {
            return weight.bf16() && new CastWeight(weight.address(), c, oc).equals(cast);
        }

        /** The kept copies were just cast from {@code weight} [oc, c] (a bf16 tensor: an fp32 one went through scratch and is not kept). */
        void cast(CudaTensor weight, int c, int oc) {
            cast = weight.bf16() ? new CastWeight(weight.address(), c, oc) : null;
        }

        /** The buffer of the kept e4m3 transposed input, at least {@code bytes} long. */
        long keptInput(long bytes) {
            return keptInput.atLeast(bytes);
        }

        Measured measured() {
            return measured;
        }

        void measured(Measured m) {
            measured = m;
        }
    }

    Fp8Sites(Gpu gpu) {
        this.gpu = gpu;
    }

    /** The backend wrote [address, address + bytes): a weight copy it overlaps is cast again. */
    void written(long address, long bytes) {
        for (Site s : sites.values()) {
            if (s.cast != null && s.cast.overlaps(address, bytes)) {
                s.cast = null;
            }
        }
    }

    /** The parameters were updated: every weight copy is cast again. */
    void allWritten() {
        for (Site s : sites.values()) {
            s.cast = null;
        }
    }

    /** The state of {@code site}, made on its first use. */
    Site site(int site) {
        return sites.computeIfAbsent(site, s -> new Site(gpu));
    }

    /**
     * The slot, zeroed, into which the kernel about to write {@code t} measures its amax for the
     * next FP8 matmul of {@code site} (its input, or with {@code gradient} its output gradient),
     * which then skips its own amax pass.
     */
    long fromProducer(int site, CudaTensor t, boolean gradient) {
        Site s = site(site);
        long slot = gradient ? s.gradientAmax() : s.inputAmax();
        gpu.driver().memsetD32Async(slot, 0, 1, gpu.stream());
        produced = new Produced(site, t.address(), gradient);
        return slot;
    }

    /** Whether the kernel that wrote {@code t} measured its amax for this matmul of {@code site}; the hand-over ends here either way. */
    boolean producedFor(int site, CudaTensor t, boolean gradient) {
        Produced p = produced;
        produced = null;
        return t.bf16() && p != null && p.site() == site && p.address() == t.address() && p.gradient() == gradient;
    }
}
