package io.tinyllamaj.data.eval;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The zero-shot tasks of TinyLlama's evaluation table, each reading its Hugging Face dataset's
 * own row schema and building the prompts of lm-evaluation-harness 0.4: the context, and
 * {@code " " + choice} as the continuation of each choice (the harness's target delimiter).
 */
public enum EvalTask {
    HELLASWAG("hellaswag", true),
    PIQA("piqa", true),
    ARC_EASY("arc_easy", true),
    ARC_CHALLENGE("arc_challenge", true),
    WINOGRANDE("winogrande", false),
    BOOLQ("boolq", false),
    OPENBOOKQA("openbookqa", true);

    private static final String DELIMITER = " ";
    private static final Pattern BRACKETED = Pattern.compile("\\[.*?\\]");

    private final String key;
    private final boolean hasAccNorm;

    EvalTask(String key, boolean hasAccNorm) {
        this.key = key;
        this.hasAccNorm = hasAccNorm;
    }

    public String key() {
        return key;
    }

    /** Whether the harness reports acc_norm for this task (WinoGrande and BoolQ report acc only). */
    public boolean hasAccNorm() {
        return hasAccNorm;
    }

    public static EvalTask of(String name) {
        for (EvalTask task : values()) {
            if (task.key.equals(name)) {
                return task;
            }
        }
        throw new IllegalArgumentException("unknown task '" + name + "' (expected one of "
                + String.join(", ", Arrays.stream(values()).map(EvalTask::key).toList()) + ")");
    }

    /** The item of one row; a row without this task's fields, or with a gold label out of range, is refused. */
    public EvalItem item(TaskRow row) {
        return switch (this) {
            case HELLASWAG -> hellaswag(row);
            case PIQA -> {
                List<String> choices = List.of(row.text("sol1"), row.text("sol2"));
                yield choices(row, "Question: " + row.text("goal") + "\nAnswer:", "sol1", choices, row.index("label", row.integer("label"), 2));
            }
            case ARC_EASY, ARC_CHALLENGE -> lettered(row, "Question: " + row.text("question") + "\nAnswer:", row.text("answerKey"));
            case OPENBOOKQA -> lettered(row, row.text("question_stem"), row.text("answerKey").stripLeading());
            case WINOGRANDE -> winogrande(row);
            case BOOLQ -> {
                String context = row.text("passage") + "\nQuestion: " + row.text("question") + "?\nAnswer:";
                // super_glue/boolq has label 0/1; google/boolq has answer false/true
                int gold = row.has("label") ? row.index("label", row.integer("label"), 2) : (row.bool("answer") ? 1 : 0);
                yield choices(row, context, "label", List.of("no", "yes"), gold);
            }
        };
    }

    private static EvalItem hellaswag(TaskRow row) {
        String context = row.text("ctx_a") + " " + capitalize(row.text("ctx_b"));
        List<String> endings = new ArrayList<>();
        for (String ending : row.texts("endings")) {
            endings.add(preprocess(ending));
        }
        int gold = row.index("label", row.integer("label"), endings.size());
        return choices(row, preprocess(row.text("activity_label") + ": " + context), "endings", endings, gold);
    }

    /** ARC and OpenBookQA: {@code choices{text,label}} and the gold label's position among the labels. */
    private static EvalItem lettered(TaskRow row, String context, String answerKey) {
        List<String> texts = row.texts("choices.text"), labels = row.texts("choices.label");
        if (texts.size() != labels.size()) {
            throw row.bad("choices.label", "has " + labels.size() + " labels for " + texts.size() + " choices");
        }
        int gold = labels.indexOf(answerKey);
        if (gold < 0) {
            throw row.bad("answerKey", "is '" + answerKey + "', not one of the labels " + labels);
        }
        return choices(row, context, "choices.text", texts, gold);
    }

    /**
     * Partial scoring: the sentence up to the blank with each option is a context, and the text
     * after the blank (stripped) the shared continuation.
     */
    private static EvalItem winogrande(TaskRow row) {
        String sentence = row.text("sentence");
        int blank = sentence.indexOf('_');
        if (blank < 0) {
            throw row.bad("sentence", "has no blank '_'");
        }
        String answer = row.text("answer").strip();
        int gold = switch (answer) {
            case "1" -> 0;
            case "2" -> 1;
            default -> throw row.bad("answer", "is '" + answer + "', expected 1 or 2");
        };
        String target = sentence.substring(blank + 1).strip();
        if (target.isEmpty()) {
            throw row.bad("sentence", "has nothing after the blank to score");
        }
        List<EvalItem.Request> requests = new ArrayList<>();
        List<String> contexts = new ArrayList<>();
        for (String option : List.of(row.text("option1"), row.text("option2"))) {
            String context = sentence.substring(0, blank) + option;
            contexts.add(context);
            requests.add(new EvalItem.Request(context, DELIMITER + target));
        }
        return new EvalItem(row.place(), requests, gold, lengths(contexts));
    }

    /** {@code field} names the choices in an error: an empty one would divide acc_norm by zero. */
    private static EvalItem choices(TaskRow row, String context, String field, List<String> choices, int gold) {
        List<EvalItem.Request> requests = new ArrayList<>();
        for (String choice : choices) {
            if (choice.isEmpty()) {
                throw row.bad(field, "holds an empty choice");
            }
            requests.add(new EvalItem.Request(context, DELIMITER + choice));
        }
        return new EvalItem(row.place(), requests, gold, lengths(choices));
    }

    private static int[] lengths(List<String> texts) {
        return texts.stream().mapToInt(s -> s.codePointCount(0, s.length())).toArray();
    }

    /** HellaSwag's cleanup of WikiHow artefacts: " [title]" becomes ". ", other bracketed markers go. */
    static String preprocess(String text) {
        text = text.strip().replace(" [title]", ". ");
        text = BRACKETED.matcher(text).replaceAll("");
        return text.replace("  ", " ");
    }

    /** Python's str.capitalize: the first character in title case, the rest in lower case. */
    static String capitalize(String text) {
        if (text.isEmpty()) {
            return text;
        }
        int first = text.codePointAt(0), width = Character.charCount(first);
        return new String(Character.toChars(Character.toTitleCase(first))) + text.substring(width).toLowerCase(Locale.ROOT);
    }
}
