package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.ContinuationSplit;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;
import java.util.function.IntUnaryOperator;

/**
 * Scores log-likelihood requests with forward passes only. Each request becomes the row
 * context + continuation minus its last token (the logits at the last context position and at
 * each continuation token but the last predict the continuation); a request whose row is a
 * prefix of another's reads that row's logits, exact for a causal model (BoolQ's " no" and
 * " yes" share one forward). Rows go longest first into batches of at most {@code batchTokens}
 * padded tokens; a row longer than the model's context keeps its last tokens, as the harness does.
 */
public final class LoglikelihoodScorer {

    private final LlamaModel model;
    private final int batchTokens;

    public LoglikelihoodScorer(LlamaModel model, int batchTokens) {
        if (batchTokens <= 0) {
            throw new IllegalArgumentException("--batch-tokens must be positive, got " + batchTokens);
        }
        this.model = model;
        this.batchTokens = batchTokens;
    }

    /** A row of tokens and the requests that read their logits from it. */
    private static final class Row {
        final int[] tokens;
        final List<Integer> requests = new ArrayList<>();

        Row(int[] tokens) {
            this.tokens = tokens;
        }
    }

    /** Results in request order; {@code done} hears each scored request's index. */
    public Loglikelihood[] score(List<ContinuationSplit.Tokens> requests, IntConsumer done) {
        return score(requests, done, IntUnaryOperator.identity());
    }

    /**
     * As {@link #score(List, IntConsumer)}; {@code forwardsOnEveryRank} takes the number of
     * forwards these requests need and returns the number to run (the most any rank needs):
     * the difference is run as one-token padding forwards, whose logits nobody reads.
     */
    public Loglikelihood[] score(List<ContinuationSplit.Tokens> requests, IntConsumer done, IntUnaryOperator forwardsOnEveryRank) {
        int maxLen = model.config().maxSeqLen();
        int[][] inputs = new int[requests.size()][];
        for (int i = 0; i < inputs.length; i++) {
            ContinuationSplit.Tokens r = requests.get(i);
            if (r.continuation().length == 0) {
                throw new IllegalArgumentException("request " + i + ": the continuation has no tokens");
            }
            if (r.continuation().length > maxLen) {
                throw new IllegalArgumentException("request " + i + ": a continuation of " + r.continuation().length
                        + " tokens exceeds the model's context of " + maxLen);
            }
            int[] whole = Arrays.copyOf(r.context(), r.context().length + r.continuation().length);
            System.arraycopy(r.continuation(), 0, whole, r.context().length, r.continuation().length);
            inputs[i] = Arrays.copyOfRange(whole, Math.max(0, whole.length - (maxLen + 1)), whole.length - 1);
        }
        List<Row> rows = rows(inputs);
        int forwards = 0;
        for (int start = 0; start < rows.size(); start += batchRows(rows, start)) {
            forwards++;
        }
        int padding = forwardsOnEveryRank.applyAsInt(forwards) - forwards;
        Loglikelihood[] out = new Loglikelihood[inputs.length];
        int vocab = model.config().vocabSize();
        for (int start = 0; start < rows.size(); ) {
            int t = rows.get(start).tokens.length;
            int b = batchRows(rows, start);
            int[] batch = new int[b * t]; // padding after a row's end cannot change its logits (causal)
            for (int r = 0; r < b; r++) {
                int[] tokens = rows.get(start + r).tokens;
                System.arraycopy(tokens, 0, batch, r * t, tokens.length);
            }
            Tensor logits = model.logits(batch, b, t);
            Backend backend = model.backend();
            for (int r = 0; r < b; r++) {
                for (int request : rows.get(start + r).requests) {
                    int[] continuation = requests.get(request).continuation();
                    int first = r * t + inputs[request].length - continuation.length;
                    float[] values = backend.download(logits.slice((long) first * vocab, (long) continuation.length * vocab));
                    out[request] = loglikelihood(values, continuation, vocab);
                    done.accept(request);
                }
            }
            start += b;
        }
        for (int i = 0; i < padding; i++) {
            model.logits(new int[1], 1, 1);
        }
        return out;
    }

    /** Rows in the batch that starts at {@code start}: as many of its (longest) row's length as batchTokens holds, at least one. */
    private int batchRows(List<Row> rows, int start) {
        return Math.max(1, Math.min(rows.size() - start, batchTokens / rows.get(start).tokens.length));
    }

    /** Longest first; a request whose input is a prefix of a longer row's is read from that row. */
    private static List<Row> rows(int[][] inputs) {
        Integer[] order = new Integer[inputs.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingInt((Integer i) -> -inputs[i].length).thenComparingInt(i -> i));
        List<Row> rows = new ArrayList<>();
        // candidate rows by their first token, to keep the prefix search short
        Map<Integer, List<Row>> byFirst = new HashMap<>();
        for (int i : order) {
            int[] input = inputs[i];
            Row host = null;
            for (Row row : byFirst.getOrDefault(input[0], List.of())) {
                if (Arrays.equals(row.tokens, 0, input.length, input, 0, input.length)) {
                    host = row;
                    break;
                }
            }
            if (host == null) {
                host = new Row(input);
                rows.add(host);
                byFirst.computeIfAbsent(input[0], k -> new ArrayList<>()).add(host);
            }
            host.requests.add(i);
        }
        return rows;
    }

    /** The sum of log-softmax at each continuation token, in float64, and whether each was the argmax. */
    static Loglikelihood loglikelihood(float[] logits, int[] continuation, int vocab) {
        double sum = 0;
        boolean greedy = true;
        for (int p = 0; p < continuation.length; p++) {
            int base = p * vocab, best = 0;
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < vocab; j++) {
                if (logits[base + j] > max) {
                    max = logits[base + j];
                    best = j;
                }
            }
            double z = 0;
            for (int j = 0; j < vocab; j++) {
                z += Math.exp(logits[base + j] - max);
            }
            sum += logits[base + continuation[p]] - max - Math.log(z);
            greedy &= best == continuation[p];
        }
        return new Loglikelihood(sum, greedy);
    }
}
