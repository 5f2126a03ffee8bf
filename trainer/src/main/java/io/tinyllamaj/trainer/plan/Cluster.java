package io.tinyllamaj.trainer.plan;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The machines a plan is for: {@code gpus} GPUs of one kind in {@code nodes} equal nodes, the bus
 * bandwidth of a collective inside a node and the network bandwidth of each node. Bandwidths are
 * in Gb/s, as the flags take them (8 Gb/s = 1 GB/s).
 *
 * @param intraNodeGbps bus bandwidth of a collective among the GPUs of one node (NVLink)
 * @param interNodeGbps network bandwidth of one node, shared by its GPUs
 */
public record Cluster(int gpus, GpuSpec gpu, int nodes, double intraNodeGbps, double interNodeGbps) {

    /** A node holds this many GPUs unless --nodes says otherwise: the usual 8-GPU server. */
    static final int GPUS_PER_NODE = 8;
    /** The network of a node unless --inter-node-gbps says otherwise: one 100 Gb/s NIC (Ethernet or InfiniBand EDR). */
    static final double DEFAULT_INTER_NODE_GBPS = 100;
    /** Far beyond any cluster, and small enough that every count derived from it fits an int. */
    static final int MAX_GPUS = 1 << 20;

    private static final Pattern SPEC = Pattern.compile("(\\d+)[xX](.+)");

    /**
     * {@code spec} as {@code <count>x<GPU>} ("16xA100-40G"); {@code nodes} null: nodes of up to
     * {@value #GPUS_PER_NODE}; a bandwidth null: the GPU's NVLink bus bandwidth, or
     * {@value #DEFAULT_INTER_NODE_GBPS} Gb/s a node. Anything else out of place is refused in one line.
     */
    public static Cluster parse(String spec, Integer nodes, Double intraNodeGbps, Double interNodeGbps) {
        String flag = "--cluster " + spec;
        Matcher m = SPEC.matcher(spec.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException(flag + ": expected <GPUs>x<GPU>, for example 16xA100-40G (GPUs: " + GpuSpec.known() + ")");
        }
        String digits = m.group(1).replaceFirst("^0+(?=.)", "");
        if (digits.length() > 7 || Integer.parseInt(digits) > MAX_GPUS) {
            throw new IllegalArgumentException(flag + ": the GPU count must be at most " + MAX_GPUS + ", got " + m.group(1));
        }
        int gpus = Integer.parseInt(digits);
        if (gpus < 1) {
            throw new IllegalArgumentException(flag + ": the GPU count must be at least 1, got " + gpus);
        }
        GpuSpec gpu = GpuSpec.named(m.group(2), flag);
        int nodeCount = nodes != null ? nodes : (gpus + GPUS_PER_NODE - 1) / GPUS_PER_NODE;
        if (nodes != null && (nodes < 1 || gpus % nodes != 0)) {
            throw new IllegalArgumentException("--nodes " + nodes + " must divide the " + gpus + " GPUs of " + flag + " into equal nodes");
        }
        if (gpus % nodeCount != 0) {
            throw new IllegalArgumentException(flag + ": " + gpus + " GPUs do not split into equal nodes of at most " + GPUS_PER_NODE
                    + " (pass --nodes)");
        }
        return new Cluster(gpus, gpu, nodeCount,
                positive("--intra-node-gbps", intraNodeGbps, gpu.nvlinkGBps() * 8),
                positive("--inter-node-gbps", interNodeGbps, DEFAULT_INTER_NODE_GBPS));
    }

    private static double positive(String flag, Double given, double fallback) {
        if (given == null) {
            return fallback;
        }
        if (!(given > 0) || Double.isInfinite(given)) {
            throw new IllegalArgumentException(flag + " must be a positive, finite number, got " + given);
        }
        return given;
    }

    public int gpusPerNode() {
        return gpus / nodes;
    }

    /** Bytes a second of a collective inside one node. */
    double intraNodeBytesPerSecond() {
        return intraNodeGbps * 1e9 / 8;
    }

    /** Bytes a second of one node's network. */
    double interNodeBytesPerSecond() {
        return interNodeGbps * 1e9 / 8;
    }

    /**
     * The bus bandwidth of a ring over all GPUs: NVLink inside one node; across nodes every link
     * of the ring carries the same bytes and each node's network carries one link in and one out,
     * so the slower of NVLink and one node's network.
     */
    double worldBytesPerSecond() {
        return nodes == 1 ? intraNodeBytesPerSecond() : Math.min(intraNodeBytesPerSecond(), interNodeBytesPerSecond());
    }

    /** "16 x A100-40G in 2 nodes of 8". */
    String describe() {
        return String.format(Locale.ROOT, "%d x %s in %d node%s of %d", gpus, gpu.name(), nodes, nodes == 1 ? "" : "s", gpusPerNode());
    }
}
