package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.data.eval.EvalItem;
import io.tinyllamaj.data.eval.EvalTask;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.trainer.Backends;
import io.tinyllamaj.trainer.eval.EvalProgress;
import io.tinyllamaj.trainer.eval.EvalReport;
import io.tinyllamaj.trainer.eval.TaskEvaluation;
import io.tinyllamaj.trainer.eval.TaskResult;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama eval}: zero-shot multiple-choice tasks scored as lm-evaluation-harness 0.4
 * scores them (TinyLlama's evaluation table); docs/eval.md has the tasks and their data.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Score a checkpoint on zero-shot tasks (hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq, "
                + "openbookqa) as lm-evaluation-harness does; writes OUT/results.json and OUT/samples-<task>.jsonl.")
public final class EvalCommand implements Callable<Integer> {

    @Option(names = "--checkpoint", required = true, paramLabel = "HF_DIR|RUN_DIR",
            description = "A Hugging Face checkpoint directory, a run directory (its newest checkpoint) or a training checkpoint.")
    private Path checkpoint;

    @Option(names = "--tasks", required = true, split = ",", paramLabel = "TASK,...", description = "Tasks to run, comma-separated.")
    private List<String> tasks;

    @Option(names = "--data", required = true, paramLabel = "DIR", description = "Directory of <task>.jsonl or <task>.parquet files.")
    private Path data;

    @Option(names = "--out", required = true, paramLabel = "OUT", description = "Output directory.")
    private Path out;

    @Option(names = "--limit", paramLabel = "N", description = "Score only the first N items of each task.")
    private Integer limit; // null: every item

    @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    private String device;

    @Option(names = "--batch-tokens", defaultValue = "2048", paramLabel = "N",
            description = "Padded tokens per forward (default: ${DEFAULT-VALUE}).")
    private int batchTokens;

    @Option(names = "--tokenizer", paramLabel = "FILE|llama2",
            description = "Tokenizer (default: tokenizer.json or tokenizer.model in the checkpoint directory).")
    private String tokenizer;

    @Option(names = "--add-bos", description = "Start every request with the BOS token (the harness adds none by default).")
    private boolean addBos;

    @Override
    public Integer call() throws Exception {
        List<EvalTask> selected = new ArrayList<>();
        for (String name : new LinkedHashSet<>(tasks)) {
            selected.add(EvalTask.of(name.strip()));
        }
        if (limit != null && limit <= 0) {
            throw new IllegalArgumentException("--limit must be positive, got " + limit);
        }
        if (batchTokens <= 0) {
            throw new IllegalArgumentException("--batch-tokens must be positive, got " + batchTokens);
        }
        DurableFiles.requireCreatableDirectory(out); // named before the scoring, not after it
        LlamaTokenizer text = CheckpointModels.tokenizer(tokenizer, checkpoint);
        // every item is read and checked before the model is loaded: bad data fails in seconds
        List<List<EvalItem>> items = TaskEvaluation.read(data, selected, limit == null ? -1 : limit);
        LlamaModel model = CheckpointModels.load(checkpoint, Backends.create(device));
        if (text.vocabSize() > model.config().vocabSize()) {
            throw new IllegalArgumentException("the tokenizer has " + text.vocabSize() + " pieces but the model's vocabulary has "
                    + model.config().vocabSize() + " ids: they do not belong together (pass the checkpoint's own with --tokenizer)");
        }
        TaskEvaluation evaluation = new TaskEvaluation(model, text, batchTokens, addBos);
        EvalProgress progress = new EvalProgress(System.err, System.console() != null && System.console().isTerminal());
        List<TaskEvaluation.Outcome> outcomes = new ArrayList<>();
        for (int i = 0; i < selected.size(); i++) {
            outcomes.add(evaluation.run(selected.get(i), items.get(i), progress));
        }
        Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("checkpoint", checkpoint.toString());
        settings.put("model", model.config().name());
        settings.put("data", data.toString());
        settings.put("tokenizer", tokenizer != null ? tokenizer : "checkpoint");
        settings.put("num_fewshot", 0);
        settings.put("limit", limit);
        settings.put("add_bos", addBos);
        settings.put("device", device);
        settings.put("batch_tokens", batchTokens);
        EvalReport.write(out, outcomes, settings);
        System.out.print(EvalReport.table(outcomes.stream().map(TaskEvaluation.Outcome::result).toList()));
        System.out.println("wrote " + out.resolve("results.json"));
        return 0;
    }
}
