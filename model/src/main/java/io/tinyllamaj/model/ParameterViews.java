package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * One flat buffer in {@link ParameterLayout} order (the weights, their gradients or the matmuls'
 * copy of the weights) sliced per parameter once, so a training step takes its tensors from
 * fields instead of looking names up.
 */
record ParameterViews(Tensor embed, Tensor finalNorm, Tensor lmHead, List<Block> blocks) {

    /** One transformer block's slices. */
    record Block(Tensor attnNorm, Tensor qkv, Tensor attnOut, Tensor mlpNorm, Tensor gateUp, Tensor down) {
    }

    static ParameterViews of(ParameterLayout layout, Tensor buffer, int layers) {
        List<Block> blocks = new ArrayList<>(layers);
        for (int l = 0; l < layers; l++) {
            ParameterLayout.Block b = layout.block(l);
            blocks.add(new Block(slice(buffer, b.attnNorm()), slice(buffer, b.qkv()), slice(buffer, b.attnOut()),
                    slice(buffer, b.mlpNorm()), slice(buffer, b.gateUp()), slice(buffer, b.down())));
        }
        return new ParameterViews(slice(buffer, layout.get("embed")), slice(buffer, layout.get("final_norm")),
                slice(buffer, layout.get("lm_head")), List.copyOf(blocks));
    }

    /** One block's slices of a buffer that holds the flat range starting at {@code base} (a gathered unit). */
    static Block block(ParameterLayout.Block b, Tensor buffer, long base) {
        return new Block(slice(buffer, b.attnNorm(), base), slice(buffer, b.qkv(), base), slice(buffer, b.attnOut(), base),
                slice(buffer, b.mlpNorm(), base), slice(buffer, b.gateUp(), base), slice(buffer, b.down(), base));
    }

    /** One block's tensors as {@code slice} gives them (a gathered unit's). */
    static Block block(ParameterLayout.Block b, Function<ParameterLayout.Entry, Tensor> slice) {
        return new Block(slice.apply(b.attnNorm()), slice.apply(b.qkv()), slice.apply(b.attnOut()), slice.apply(b.mlpNorm()),
                slice.apply(b.gateUp()), slice.apply(b.down()));
    }

    static Tensor slice(Tensor buffer, ParameterLayout.Entry entry, long base) {
        return buffer.slice(entry.offset() - base, entry.size());
    }

    Block block(int layer) {
        return blocks.get(layer);
    }

    private static Tensor slice(Tensor buffer, ParameterLayout.Entry entry) {
        return buffer.slice(entry.offset(), entry.size());
    }
}
