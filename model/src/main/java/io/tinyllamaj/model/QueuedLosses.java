package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * The per-token losses of the micro-batches queued since they were last read, each in a buffer of
 * its own on the backend. Reading a loss waits for the device; kept apart, the losses of an
 * optimizer step's micro-batches are read once, after the last is queued, and the host draws and
 * queues micro-batch i + 1 while the GPU runs micro-batch i. The buffers are kept for the next
 * step. Sums run in double, position by position, as they did when each micro-batch was read alone.
 */
final class QueuedLosses {

    private final Backend backend;
    private final List<Tensor> losses = new ArrayList<>(); // [b * t] per queued micro-batch
    private final List<Tensor> logZ = new ArrayList<>();   // [b * t] logsumexps, for a z-loss
    private final List<Float> zLoss = new ArrayList<>();   // each queued micro-batch's z-loss coefficient (0: none)

    QueuedLosses(Backend backend) {
        this.backend = backend;
    }

    /** The buffer the next micro-batch's n per-token losses go to; call {@link #logZ} next when it has a z-loss. */
    Tensor nextLosses(long n, float zLossCoefficient) {
        int slot = zLoss.size();
        zLoss.add(zLossCoefficient);
        return sized(losses, slot, n);
    }

    /** The logsumexp buffer of the micro-batch {@link #nextLosses} just queued. */
    Tensor logZ(long n) {
        return sized(logZ, zLoss.size() - 1, n);
    }

    private Tensor sized(List<Tensor> pool, int slot, long n) {
        while (pool.size() <= slot) {
            pool.add(null);
        }
        Tensor buffer = pool.get(slot);
        if (buffer == null || buffer.length() != n) {
            if (buffer != null) {
                backend.release(buffer);
            }
            buffer = backend.allocate(n);
            pool.set(slot, buffer);
        }
        return buffer;
    }

    /** Waits for the queued micro-batches and returns their sums in queue order; the queue is empty after. */
    List<LlamaModel.Losses> take() {
        List<LlamaModel.Losses> sums = new ArrayList<>(zLoss.size());
        for (int i = 0; i < zLoss.size(); i++) {
            double sum = 0;
            for (float loss : backend.download(losses.get(i))) {
                sum += loss;
            }
            double zSum = 0;
            float coefficient = zLoss.get(i);
            if (coefficient != 0f) {
                for (float lse : backend.download(logZ.get(i))) {
                    zSum += (double) coefficient * lse * lse;
                }
            }
            sums.add(new LlamaModel.Losses(sum, zSum));
        }
        zLoss.clear();
        return sums;
    }

    /** Micro-batches queued and not read yet. */
    int queued() {
        return zLoss.size();
    }

    /** Bytes of the buffers kept, as the backend stores them. */
    long bytes() {
        long total = 0;
        for (List<Tensor> pool : List.of(losses, logZ)) {
            for (Tensor buffer : pool) {
                total += buffer == null ? 0 : backend.bytes(buffer);
            }
        }
        return total;
    }
}
