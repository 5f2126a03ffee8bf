package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.data.eval.EvalItem;
import io.tinyllamaj.data.eval.EvalTask;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.config.TrainingConfig;
import io.tinyllamaj.trainer.data.ProjectPaths;
import io.tinyllamaj.trainer.distributed.Collectives;
import io.tinyllamaj.trainer.distributed.Strategy;
import io.tinyllamaj.trainer.eval.EvalProgress;
import io.tinyllamaj.trainer.eval.EvalReport;
import io.tinyllamaj.trainer.eval.TaskEvaluation;
import io.tinyllamaj.trainer.eval.TaskResult;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * {@code eval.tasks} during training: the items are read and checked when the run starts (a bad
 * row stops it before the first step); at each evaluation the ranks share the items
 * ({@link TaskEvaluation#run(EvalTask, List, EvalProgress, Collectives)}), every rank gets the metrics, and rank 0 writes the whole report to
 * {@code <run>/eval/step-NNNNNNNN/} (results.json and samples, as {@code tinyllama eval} writes them).
 */
final class TrainingTasks {

    static final String DIRECTORY = "eval";

    private final List<EvalTask> tasks;
    private final List<List<EvalItem>> items;
    private final LlamaTokenizer tokenizer;
    private final TrainingConfig.Eval settings;
    private final String tokenizerName;
    private final Path runDirectory;
    private final boolean writes;

    private TrainingTasks(List<EvalTask> tasks, List<List<EvalItem>> items, LlamaTokenizer tokenizer, TrainingConfig.Eval settings,
                          String tokenizerName, Path runDirectory, boolean writes) {
        this.tasks = tasks;
        this.items = items;
        this.tokenizer = tokenizer;
        this.settings = settings;
        this.tokenizerName = tokenizerName;
        this.runDirectory = runDirectory;
        this.writes = writes;
    }

    static TrainingTasks none() {
        return new TrainingTasks(List.of(), List.of(), null, null, null, null, false);
    }

    /** The configured tasks with their items read and checked, or {@link #none()}; {@code writes}: this rank writes the reports. */
    static TrainingTasks open(TrainingConfig config, LlamaConfig model, Path runDirectory, boolean writes) throws IOException {
        TrainingConfig.Eval e = config.eval();
        if (e.tasks().isEmpty()) {
            return none();
        }
        String name = config.data().tokenizer();
        LlamaTokenizer tokenizer = name.equals(LlamaTokenizer.BUILT_IN_NAME) ? LlamaTokenizer.llama2()
                : LlamaTokenizer.load(ProjectPaths.resolveOutput(name));
        if (tokenizer.vocabSize() > model.vocabSize()) {
            throw new IllegalArgumentException("eval.tasks: data.tokenizer " + name + " has " + tokenizer.vocabSize()
                    + " pieces but the model's vocabulary has " + model.vocabSize() + " ids");
        }
        List<EvalTask> tasks = e.tasks().stream().map(EvalTask::of).toList();
        List<List<EvalItem>> items = TaskEvaluation.read(ProjectPaths.resolveOutput(e.taskData()), tasks,
                e.taskLimit() == null ? -1 : e.taskLimit());
        return new TrainingTasks(tasks, items, tokenizer, e, name, runDirectory, writes);
    }

    boolean enabled() {
        return !tasks.isEmpty();
    }

    /** One evaluation's metrics per task, in the configured order, and how long it took. */
    record Scores(List<TaskResult> results, double seconds) {

        /** {@code task_acc} and {@code task_acc_norm} (tasks that have it) objects of a metrics record. */
        void addTo(ObjectNode record) {
            ObjectNode acc = record.putObject("task_acc");
            results.forEach(r -> acc.put(r.task().key(), r.acc()));
            ObjectNode norm = record.putObject("task_acc_norm");
            results.stream().filter(r -> r.task().hasAccNorm()).forEach(r -> norm.put(r.task().key(), r.accNorm()));
        }

        /** The metric TinyLlama's table reports per task: acc_norm where the harness has it, else acc. */
        String text(long step) {
            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "step %d: tasks", step));
            for (TaskResult r : results) {
                boolean norm = r.task().hasAccNorm();
                line.append(String.format(Locale.ROOT, "%s %s %s %.4f", line.length() > 14 ? "," : "", r.task().key(),
                        norm ? "acc_norm" : "acc", norm ? r.accNorm() : r.acc()));
            }
            return line.append(String.format(Locale.ROOT, " (%d items, %.1f s)", results.stream().mapToInt(TaskResult::n).sum(),
                    seconds)).toString();
        }
    }

    /**
     * Scores every task on the model as it is at {@code step}, the items shared over the
     * strategy's ranks. Requests are batched up to one training sequence of tokens per forward.
     * Before each task the ranks ask {@code stopRequested} (a decision they share): a stop
     * abandons the evaluation (empty), so a SIGTERM waits for one task at most before the
     * checkpoint, not for all of them.
     */
    Optional<Scores> evaluate(LlamaModel model, Strategy strategy, int seqLen, long step, BooleanSupplier stopRequested)
            throws IOException {
        long started = System.nanoTime();
        TaskEvaluation evaluation = new TaskEvaluation(model, tokenizer, seqLen, false);
        List<TaskEvaluation.Outcome> outcomes = new ArrayList<>();
        boolean tuning = model.backend().matmulTuning(false); // each batch has its own shape: timing them costs more than it saves
        try {
            for (int i = 0; i < tasks.size(); i++) {
                if (stopRequested.getAsBoolean()) {
                    return Optional.empty();
                }
                outcomes.add(evaluation.run(tasks.get(i), items.get(i), EvalProgress.quiet(), strategy.world()));
            }
        } finally {
            model.backend().matmulTuning(tuning);
        }
        if (writes) {
            Map<String, Object> report = new LinkedHashMap<>();
            report.put("run", runDirectory.toString());
            report.put("step", step);
            report.put("model", model.config().name());
            report.put("data", settings.taskData());
            report.put("tokenizer", tokenizerName);
            report.put("num_fewshot", 0);
            report.put("limit", settings.taskLimit());
            report.put("add_bos", false);
            report.put("batch_tokens", seqLen);
            EvalReport.write(runDirectory.resolve(DIRECTORY).resolve(CheckpointStore.name(step)), outcomes, report);
        }
        return Optional.of(new Scores(outcomes.stream().map(TaskEvaluation.Outcome::result).toList(),
                (System.nanoTime() - started) / 1e9));
    }
}
