package io.tinyllamaj.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where each parameter lives in the one flat fp32 buffer that holds them all (one allocation,
 * one AdamW sweep, one norm, one checkpoint write). Order: embedding, then per block
 * attn_norm, qkv, attn_out, mlp_norm, gate_up, down, then final_norm and lm_head.
 * q, k and v are one fused [(heads + 2 kvHeads) headSize, dim] matrix, gate and up one
 * [2 intermediate, dim] matrix (gate rows first): one matmul each.
 */
public final class ParameterLayout {

    /** One named tensor: rows x cols values at offset (a vector has rows == 1). */
    public record Entry(String name, long offset, int rows, int cols) {
        public long size() {
            return (long) rows * cols;
        }
    }

    /** A run of a unit's range [from, to) whose entries are all matmul weights or all not (norms, the embedding). */
    public record Run(long from, long to, boolean matmul) {
    }

    /** One transformer block's parameters, resolved once so the step looks nothing up by name. */
    public record Block(Entry attnNorm, Entry qkv, Entry attnOut, Entry mlpNorm, Entry gateUp, Entry down) {
    }

    private final Map<String, Entry> entries;
    private final List<Block> blocks;
    private final long total;

    public ParameterLayout(LlamaConfig c) {
        Map<String, Entry> map = new LinkedHashMap<>();
        long[] cursor = {0};
        add(map, cursor, "embed", c.vocabSize(), c.dim());
        for (int l = 0; l < c.layers(); l++) {
            add(map, cursor, block(l, "attn_norm"), 1, c.dim());
            add(map, cursor, block(l, "qkv"), c.qkvDim(), c.dim());
            add(map, cursor, block(l, "attn_out"), c.dim(), c.heads() * c.headSize());
            add(map, cursor, block(l, "mlp_norm"), 1, c.dim());
            add(map, cursor, block(l, "gate_up"), 2 * c.intermediate(), c.dim());
            add(map, cursor, block(l, "down"), c.dim(), c.intermediate());
        }
        add(map, cursor, "final_norm", 1, c.dim());
        if (c.tieEmbeddings()) {
            Entry embed = map.get("embed");
            map.put("lm_head", new Entry("lm_head", embed.offset(), embed.rows(), embed.cols()));
        } else {
            add(map, cursor, "lm_head", c.vocabSize(), c.dim());
        }
        this.entries = Collections.unmodifiableMap(map);
        this.total = cursor[0];
        List<Block> list = new ArrayList<>(c.layers());
        for (int l = 0; l < c.layers(); l++) {
            list.add(new Block(get(block(l, "attn_norm")), get(block(l, "qkv")), get(block(l, "attn_out")),
                    get(block(l, "mlp_norm")), get(block(l, "gate_up")), get(block(l, "down"))));
        }
        this.blocks = List.copyOf(list);
    }

    public static String block(int layer, String name) {
        return "layers." + layer + "." + name;
    }

    private static void add(Map<String, Entry> map, long[] cursor, String name, int rows, int cols) {
        map.put(name, new Entry(name, cursor[0], rows, cols));
        cursor[0] += (long) rows * cols;
    }

    public Entry get(String name) {
        Entry e = entries.get(name);
        if (e == null) {
            throw new IllegalArgumentException("no parameter named " + name);
        }
        return e;
    }

    /** The parameters of block {@code layer}. */
    public Block block(int layer) {
        return blocks.get(layer);
    }

    /** Distinct stored tensors in layout order (a tied lm_head is not listed twice). */
    public List<Entry> stored() {
        List<Entry> list = new ArrayList<>();
        for (Entry e : entries.values()) {
            if (list.isEmpty() || e.offset() >= list.getLast().offset() + list.getLast().size()) {
                list.add(e);
            }
        }
        return list;
    }

    public long total() {
        return total;
    }

    /**
     * The units full sharding gathers one at a time: 0 the embedding, 1..layers the blocks,
     * layers + 1 the final norm and lm_head. Each is one contiguous range of the flat buffer.
     */
    public int units() {
        return blocks.size() + 2;
    }

    /** Where unit {@code unit} starts in the flat buffer (see {@link #units}). */
    public long unitStart(int unit) {
        if (unit == 0) {
            return 0;
        }
        return unit <= blocks.size() ? blocks.get(unit - 1).attnNorm().offset() : get("final_norm").offset();
    }

    /** Where unit {@code unit} ends (exclusive). */
    public long unitEnd(int unit) {
        return unit + 1 < units() ? unitStart(unit + 1) : total;
    }

    /** Whether the matmuls read this entry (q/k/v, attention output, gate/up, down, lm_head), not the norms or the embedding lookup. */
    public static boolean matmulWeight(Entry e) {
        String n = e.name();
        return n.equals("lm_head") || n.endsWith(".qkv") || n.endsWith(".attn_out") || n.endsWith(".gate_up") || n.endsWith(".down");
    }

    /** How many of unit {@code unit}'s values are matmul weights ({@code matmul}) or the other entries. */
    public long unitPart(int unit, boolean matmul) {
        long sum = 0;
        for (Run r : unitRuns(unit)) {
            sum += r.matmul() == matmul ? r.to() - r.from() : 0;
        }
        return sum;
    }

    /** The most values in any unit. */
    public long largestUnit() {
        long largest = 0;
        for (int u = 0; u < units(); u++) {
            largest = Math.max(largest, unitEnd(u) - unitStart(u));
        }
        return largest;
    }

    /** The most values of one kind in any unit but the embedding (a block or the head). */
    public long largestPart(boolean matmul) {
        long most = 0;
        for (int u = 1; u < units(); u++) {
            most = Math.max(most, unitPart(u, matmul));
        }
        return most;
    }

    /** Unit {@code unit}'s range cut where it turns from matmul weights to other entries or back, in order. */
    public List<Run> unitRuns(int unit) {
        long start = unitStart(unit), end = unitEnd(unit);
        List<Run> runs = new ArrayList<>();
        for (Entry e : stored()) {
            if (e.offset() < start || e.offset() >= end) {
                continue;
            }
            boolean matmul = matmulWeight(e);
            if (!runs.isEmpty() && runs.getLast().matmul() == matmul) {
                runs.set(runs.size() - 1, new Run(runs.getLast().from(), e.offset() + e.size(), matmul));
            } else {
                runs.add(new Run(e.offset(), e.offset() + e.size(), matmul));
            }
        }
        return runs;
    }
}
