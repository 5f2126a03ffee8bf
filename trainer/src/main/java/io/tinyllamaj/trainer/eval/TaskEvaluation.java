package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.ContinuationSplit;
import io.tinyllamaj.data.eval.EvalItem;
import io.tinyllamaj.data.eval.EvalTask;
import io.tinyllamaj.data.eval.TaskFiles;
import io.tinyllamaj.data.eval.TaskRow;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.trainer.distributed.Collectives;
import io.tinyllamaj.trainer.distributed.SingleRankCollectives;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs tasks on a model: tokenizes each item's requests, scores them, and aggregates the metrics.
 *
 * @param bos whether requests start with the tokenizer's BOS token (the harness adds none)
 */
public record TaskEvaluation(LlamaModel model, LlamaTokenizer tokenizer, int batchTokens, boolean bos) {

    /** A task's metrics and its items' scores. */
    public record Outcome(TaskResult result, List<ItemScore> items) {
    }

    /**
     * Reads and checks the items of every task (the first {@code limit} of each, all when
     * negative), so a bad row is refused before the first forward.
     */
    public static List<List<EvalItem>> read(Path dataDir, List<EvalTask> tasks, int limit) throws IOException {
        List<List<EvalItem>> all = new ArrayList<>();
        for (EvalTask task : tasks) {
            List<EvalItem> items = new ArrayList<>();
            for (TaskRow row : TaskFiles.read(TaskFiles.find(dataDir, task), limit)) {
                items.add(task.item(row));
            }
            all.add(items);
        }
        return all;
    }

    public Outcome run(EvalTask task, List<EvalItem> items, EvalProgress progress) {
        return run(task, items, progress, SingleRankCollectives.INSTANCE);
    }

    /**
     * Scores the task's items shared over {@code ranks}: this rank scores items rank, rank + size,
     * ..., every rank runs as many forwards as the busiest (a fully sharded forward is
     * collective), and every rank returns the whole task's outcome.
     */
    public Outcome run(EvalTask task, List<EvalItem> items, EvalProgress progress, Collectives ranks) {
        long started = System.nanoTime();
        int[] firstRequest = new int[items.size() + 1]; // item i's requests are [firstRequest[i], firstRequest[i + 1]) of the task's
        for (int i = 0; i < items.size(); i++) {
            firstRequest[i + 1] = firstRequest[i] + items.get(i).requests().size();
        }
        List<ContinuationSplit.Tokens> requests = new ArrayList<>();
        List<Integer> owner = new ArrayList<>();
        int mine = 0;
        for (int i = ranks.rank(); i < items.size(); i += ranks.size()) {
            for (EvalItem.Request request : items.get(i).requests()) {
                requests.add(ContinuationSplit.encode(tokenizer, request.context(), request.continuation(), bos));
                owner.add(i);
            }
            mine++;
        }
        int[] remaining = new int[items.size()];
        owner.forEach(i -> remaining[i]++);
        long[] tokens = {0};
        requests.forEach(r -> tokens[0] += r.context().length + r.continuation().length);
        progress.start(task.key(), mine);
        Loglikelihood[] scores;
        try {
            scores = new LoglikelihoodScorer(model, batchTokens).score(requests, request -> {
                if (--remaining[owner.get(request)] == 0) {
                    progress.itemDone();
                }
            }, forwards -> (int) ranks.allReduceMax(forwards));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(task.key() + ": " + e.getMessage(), e);
        }
        progress.finish(tokens[0]);
        // every request's {logprob, greedy} at its place in the task; the other ranks' places hold 0
        double[] all = new double[2 * firstRequest[items.size()]];
        for (int r = 0, item = -1, k = 0; r < scores.length; r++) {
            k = owner.get(r) == item ? k + 1 : 0;
            item = owner.get(r);
            all[2 * (firstRequest[item] + k)] = scores[r].logprob();
            all[2 * (firstRequest[item] + k) + 1] = scores[r].greedy() ? 1 : 0;
        }
        sumOverRanks(all, ranks);
        List<ItemScore> scored = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            Loglikelihood[] choices = new Loglikelihood[items.get(i).requests().size()];
            for (int c = 0; c < choices.length; c++) {
                int at = 2 * (firstRequest[i] + c);
                choices[c] = new Loglikelihood(all[at], all[at + 1] != 0);
            }
            scored.add(new ItemScore(items.get(i), choices));
        }
        return new Outcome(TaskResult.of(task, scored, (System.nanoTime() - started) / 1e9), scored);
    }

    /**
     * Replaces each value, held by one rank and zero on the others, by its sum over the ranks.
     * The values travel as one float tensor, each double as its float and the float of the
     * remainder: x + 0 is exact, so a double comes back to about 1e-14.
     */
    private void sumOverRanks(double[] values, Collectives ranks) {
        if (ranks.size() == 1 || values.length == 0) {
            return;
        }
        float[] split = new float[2 * values.length];
        for (int i = 0; i < values.length; i++) {
            split[2 * i] = (float) values[i];
            split[2 * i + 1] = (float) (values[i] - split[2 * i]);
        }
        Backend backend = model.backend();
        Tensor buffer = backend.allocate(split.length);
        try {
            backend.upload(buffer, split, 0, split.length);
            ranks.allReduceSum(buffer);
            backend.download(buffer, split, 0, split.length);
        } finally {
            backend.release(buffer);
        }
        for (int i = 0; i < values.length; i++) {
            values[i] = (double) split[2 * i] + split[2 * i + 1];
        }
    }
}
