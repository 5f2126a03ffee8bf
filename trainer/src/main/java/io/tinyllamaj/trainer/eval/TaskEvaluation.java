package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.ContinuationSplit;
import io.tinyllamaj.data.eval.EvalItem;
import io.tinyllamaj.data.eval.EvalTask;
import io.tinyllamaj.data.eval.TaskFiles;
import io.tinyllamaj.data.eval.TaskRow;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.LlamaModel;

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
        long started = System.nanoTime();
        List<ContinuationSplit.Tokens> requests = new ArrayList<>();
        List<Integer> owner = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            for (EvalItem.Request request : items.get(i).requests()) {
                requests.add(ContinuationSplit.encode(tokenizer, request.context(), request.continuation(), bos));
                owner.add(i);
            }
        }
        int[] remaining = new int[items.size()];
        owner.forEach(i -> remaining[i]++);
        long[] tokens = {0};
        requests.forEach(r -> tokens[0] += r.context().length + r.continuation().length);
        progress.start(task.key(), items.size());
        Loglikelihood[] scores;
        try {
            scores = new LoglikelihoodScorer(model, batchTokens).score(requests, request -> {
                if (--remaining[owner.get(request)] == 0) {
                    progress.itemDone();
                }
            });
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(task.key() + ": " + e.getMessage(), e);
        }
        progress.finish(tokens[0]);
        List<ItemScore> scored = new ArrayList<>();
        int next = 0;
        for (EvalItem item : items) {
            Loglikelihood[] choices = new Loglikelihood[item.requests().size()];
            for (int c = 0; c < choices.length; c++) {
                choices[c] = scores[next++];
            }
            scored.add(new ItemScore(item, choices));
        }
        return new Outcome(TaskResult.of(task, scored, (System.nanoTime() - started) / 1e9), scored);
    }
}
