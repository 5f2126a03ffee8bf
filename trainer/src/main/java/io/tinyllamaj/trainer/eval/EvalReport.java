package io.tinyllamaj.trainer.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.files.DurableFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The output of an evaluation: {@code samples-<task>.jsonl} per task, then {@code results.json}
 * last (each file written whole through DurableFiles, so a results.json names complete samples),
 * and the harness-style table for the terminal.
 */
public final class EvalReport {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private EvalReport() {
    }

    public static void write(Path out, List<TaskEvaluation.Outcome> outcomes, Map<String, Object> settings) throws IOException {
        DurableFiles.createDirectories(out);
        ObjectNode results = NODES.objectNode();
        for (TaskEvaluation.Outcome outcome : outcomes) {
            TaskResult r = outcome.result();
            results.set(r.task().key(), metrics(r));
            DurableFiles.SYSTEM.write(out.resolve("samples-" + r.task().key() + ".jsonl"), samples(outcome.items()));
        }
        ObjectNode root = NODES.objectNode();
        root.set("results", results);
        root.set("settings", JSON.valueToTree(settings));
        DurableFiles.SYSTEM.write(out.resolve("results.json"), JSON.writeValueAsBytes(root));
    }

    /** {acc, acc_stderr, acc_norm, acc_norm_stderr, n}: acc_norm only where the harness has it; a NaN stderr is null. */
    public static ObjectNode metrics(TaskResult r) {
        ObjectNode node = NODES.objectNode();
        put(node, "acc", r.acc());
        put(node, "acc_stderr", r.accStderr());
        if (r.task().hasAccNorm()) {
            put(node, "acc_norm", r.accNorm());
            put(node, "acc_norm_stderr", r.accNormStderr());
        }
        node.put("n", r.n());
        return node;
    }

    private static void put(ObjectNode node, String key, double value) {
        if (Double.isNaN(value)) {
            node.putNull(key);
        } else {
            node.put(key, value);
        }
    }

    private static byte[] samples(List<ItemScore> items) throws IOException {
        StringBuilder text = new StringBuilder();
        ObjectMapper compact = new ObjectMapper();
        for (int i = 0; i < items.size(); i++) {
            ItemScore score = items.get(i);
            ObjectNode line = NODES.objectNode();
            line.put("index", i);
            line.put("source", score.item().place());
            line.put("gold", score.item().gold());
            ArrayNode lls = line.putArray("loglikelihoods"), greedy = line.putArray("greedy");
            for (Loglikelihood choice : score.choices()) {
                lls.add(choice.logprob());
                greedy.add(choice.greedy());
            }
            line.put("acc", score.correct() ? 1 : 0);
            line.put("acc_norm", score.correctNormalized() ? 1 : 0);
            text.append(compact.writeValueAsString(line)).append('\n');
        }
        return text.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** The table lm-evaluation-harness prints. */
    public static String table(List<TaskResult> results) {
        StringBuilder t = new StringBuilder();
        t.append(String.format(Locale.ROOT, "|%-13s|%6s|%-8s|%7s|   |%7s|%n", "Tasks", "n", "Metric", "Value", "Stderr"));
        t.append(String.format(Locale.ROOT, "|%s|%s:|%s|%s:|---|%s:|%n", "-".repeat(13), "-".repeat(5), "-".repeat(8), "-".repeat(6),
                "-".repeat(6)));
        for (TaskResult r : results) {
            row(t, r.task().key(), String.valueOf(r.n()), "acc", r.acc(), r.accStderr());
            if (r.task().hasAccNorm()) {
                row(t, "", "", "acc_norm", r.accNorm(), r.accNormStderr());
            }
        }
        return t.toString();
    }

    private static void row(StringBuilder t, String task, String n, String metric, double value, double stderr) {
        t.append(String.format(Locale.ROOT, "|%-13s|%6s|%-8s|%7.4f|±  |%7s|%n", task, n, metric, value,
                Double.isNaN(stderr) ? "N/A" : String.format(Locale.ROOT, "%.4f", stderr)));
    }
}
