package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.ContinuationSplit;
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
 * The log-softmax runs on the model's backend ({@link LlamaModel#score}): a continuation's
 * log-likelihood is minus the sum of its positions' cross-entropies (summed in double), and it
 * is greedy when every position's target has the largest logit (a tie for the largest counts).
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
        for (int start = 0; start < rows.size(); ) {
            int t = rows.get(start).tokens.length;
            int b = batchRows(rows, start);
            int[] batch = new int[b * t]; // padding after a row's end cannot change its logits (causal)
            for (int r = 0; r < b; r++) {
                int[] tokens = rows.get(start + r).tokens;
                System.arraycopy(tokens, 0, batch, r * t, tokens.length);
            }
            TargetSets sets = new TargetSets(b * t);
            int[][] setOf = new int[inputs.length][];
            int[] firstOf = new int[inputs.length]; // the batch position predicting a request's first continuation token
            for (int r = 0; r < b; r++) {
                for (int request : rows.get(start + r).requests) {
                    int[] continuation = requests.get(request).continuation();
                    int first = firstOf[request] = r * t + inputs[request].length - continuation.length;
                    setOf[request] = new int[continuation.length];
                    for (int k = 0; k < continuation.length; k++) {
                        setOf[request][k] = sets.place(first + k, continuation[k]);
                    }
                }
            }
            LlamaModel.PositionScores scores = model.score(batch, sets.targets(), b, t);
            for (int r = 0; r < b; r++) {
                for (int request : rows.get(start + r).requests) {
                    int[] continuation = requests.get(request).continuation();
                    int first = firstOf[request];
                    double sum = 0;
                    boolean greedy = true;
                    for (int k = 0; k < continuation.length; k++) {
                        int set = setOf[request][k];
                        sum -= scores.losses()[set][first + k];
                        greedy &= scores.margins()[set][first + k] == 0f;
                    }
                    out[request] = new Loglikelihood(sum, greedy);
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

    /**
     * The target of each position in as few sets as possible: requests that share a row read the
     * same positions, and where they ask for different tokens at one position (BoolQ's " no" and
     * " yes" after the same context) the second goes into another set. Positions nobody reads
     * keep -1 (ignored).
     */
    private static final class TargetSets {
        private final int positions;
        private final List<int[]> sets = new ArrayList<>();

        TargetSets(int positions) {
            this.positions = positions;
        }

        /** The set that holds {@code target} at {@code position}: one that already does, else the first free there. */
        int place(int position, int target) {
            for (int k = 0; k < sets.size(); k++) {
                int[] set = sets.get(k);
                if (set[position] == target) {
                    return k;
                }
                if (set[position] < 0) {
                    set[position] = target;
                    return k;
                }
            }
            int[] set = new int[positions];
            Arrays.fill(set, -1);
            set[position] = target;
            sets.add(set);
            return sets.size() - 1;
        }

        int[][] targets() {
            return sets.toArray(new int[0][]);
        }
    }
}
