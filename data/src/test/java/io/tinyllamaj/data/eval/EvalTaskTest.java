package io.tinyllamaj.data.eval;

import io.tinyllamaj.data.corpus.HadoopFreeCodecs;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.io.LocalOutputFile;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.MessageTypeParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each task's prompts from a row in its dataset's schema, written out by hand from the harness's templates. */
class EvalTaskTest {

    @TempDir
    Path temp;

    private EvalItem item(EvalTask task, String jsonLine) throws IOException {
        Path file = temp.resolve(task.key() + ".jsonl");
        Files.writeString(file, jsonLine + "\n");
        return task.item(TaskFiles.read(TaskFiles.find(temp, task), -1).getFirst());
    }

    private static void expect(EvalItem item, List<String> contexts, List<String> continuations, int gold, int[] lengths) {
        assertEquals(contexts, item.requests().stream().map(EvalItem.Request::context).toList());
        assertEquals(continuations, item.requests().stream().map(EvalItem.Request::continuation).toList());
        assertEquals(gold, item.gold());
        assertArrayEquals(lengths, item.choiceLengths());
    }

    @Test
    void hellaswagJoinsTheContextsAndCleansWikihowMarkers() throws IOException {
        EvalItem item = item(EvalTask.HELLASWAG, """
                {"activity_label": "Home and Garden", "ctx_a": "[header] How to X [title] Heat the grill.", \
                "ctx_b": "[step] turn it ON", "endings": ["[substeps] Brush it.", "Eat   it."], "label": "1"}""");
        String context = "Home and Garden: How to X. Heat the grill. turn it on";
        // "Eat   it." loses one pair of spaces only, as Python's str.replace("  ", " ") does
        expect(item, List.of(context, context), List.of("  Brush it.", " Eat  it."), 1, new int[] {10, 8});
    }

    @Test
    void hellaswagCapitalizesCtxB() throws IOException {
        EvalItem item = item(EvalTask.HELLASWAG, """
                {"activity_label": "Removing ice from car", "ctx_a": "A man smiles.", "ctx_b": "then", \
                "endings": [", the man waves.", ", it snows."], "label": 0}""");
        String context = "Removing ice from car: A man smiles. Then";
        expect(item, List.of(context, context), List.of(" , the man waves.", " , it snows."), 0, new int[] {16, 11});
    }

    @Test
    void piqaAsksTheGoal() throws IOException {
        EvalItem item = item(EvalTask.PIQA, """
                {"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Freeze it.", "label": 0}""");
        String context = "Question: Open a jar\nAnswer:";
        expect(item, List.of(context, context), List.of(" Twist the lid.", " Freeze it."), 0, new int[] {14, 10});
    }

    @Test
    void arcFindsTheAnswerKeyAmongTheLabels() throws IOException {
        String row = """
                {"id": "x", "question": "Which is hot?", "choices": {"text": ["ice", "fire", "snow"], "label": ["1", "2", "3"]}, \
                "answerKey": "2"}""";
        for (EvalTask task : List.of(EvalTask.ARC_EASY, EvalTask.ARC_CHALLENGE)) {
            String context = "Question: Which is hot?\nAnswer:";
            expect(item(task, row), List.of(context, context, context), List.of(" ice", " fire", " snow"), 1, new int[] {3, 4, 4});
        }
    }

    @Test
    void openbookqaIsTheStemAlone() throws IOException {
        EvalItem item = item(EvalTask.OPENBOOKQA, """
                {"id": "7", "question_stem": "The sun is", "choices": {"text": ["a star", "a moon"], "label": ["A", "B"]}, \
                "answerKey": " A"}""");
        expect(item, List.of("The sun is", "The sun is"), List.of(" a star", " a moon"), 0, new int[] {6, 6});
    }

    @Test
    void winograndeScoresTheSharedEndAfterEachOption() throws IOException {
        EvalItem item = item(EvalTask.WINOGRANDE, """
                {"sentence": "Sarah was a better surgeon than Maria so _ always got the easier cases.", \
                "option1": "Sarah", "option2": "Maria", "answer": "2"}""");
        String a = "Sarah was a better surgeon than Maria so Sarah", b = "Sarah was a better surgeon than Maria so Maria";
        String end = " always got the easier cases.";
        expect(item, List.of(a, b), List.of(end, end), 1, new int[] {a.length(), b.length()});
    }

    @Test
    void boolqAsksNoOrYesFromLabelOrAnswer() throws IOException {
        String context = "Cats purr.\nQuestion: do cats purr?\nAnswer:";
        expect(item(EvalTask.BOOLQ, """
                {"passage": "Cats purr.", "question": "do cats purr", "label": 1}"""),
                List.of(context, context), List.of(" no", " yes"), 1, new int[] {2, 3});
        expect(item(EvalTask.BOOLQ, """
                {"passage": "Cats purr.", "question": "do cats purr", "answer": false}"""),
                List.of(context, context), List.of(" no", " yes"), 0, new int[] {2, 3});
    }

    /** ai2_arc as Hugging Face's parquet conversion stores it: choices a struct of two 3-level lists. */
    @Test
    void parquetRowsReadAsTheirJsonLinesTwins() throws IOException {
        MessageType schema = MessageTypeParser.parseMessageType("""
                message schema {
                  optional binary question (STRING);
                  optional group choices {
                    optional group text (LIST) { repeated group list { optional binary element (STRING); } }
                    optional group label (LIST) { repeated group list { optional binary element (STRING); } }
                  }
                  optional binary answerKey (STRING);
                  optional int64 extra;
                }""");
        Path file = temp.resolve("arc_easy.parquet");
        SimpleGroupFactory groups = new SimpleGroupFactory(schema);
        try (ParquetWriter<Group> writer = ExampleParquetWriter.builder(new LocalOutputFile(file))
                .withConf(new PlainParquetConfiguration()).withCodecFactory(new HadoopFreeCodecs()).withType(schema).build()) {
            for (String key : List.of("B", "A", "C")) {
                Group row = groups.newGroup().append("question", "Which is hot?").append("answerKey", key).append("extra", 5L);
                Group choices = row.addGroup("choices");
                Group text = choices.addGroup("text"), label = choices.addGroup("label");
                for (String[] choice : new String[][] {{"ice", "A"}, {"fire", "B"}}) {
                    text.addGroup("list").append("element", choice[0]);
                    label.addGroup("list").append("element", choice[1]);
                }
                writer.write(row);
            }
        }
        List<TaskRow> rows = TaskFiles.read(TaskFiles.find(temp, EvalTask.ARC_EASY), 2);
        assertEquals(2, rows.size());
        String context = "Question: Which is hot?\nAnswer:";
        expect(EvalTask.ARC_EASY.item(rows.get(0)), List.of(context, context), List.of(" ice", " fire"), 1, new int[] {3, 4});
        assertEquals(0, EvalTask.ARC_EASY.item(rows.get(1)).gold());
        assertEquals(file + ":row 2", rows.get(1).place());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> EvalTask.ARC_EASY.item(TaskFiles.read(file, -1).get(2)));
        assertEquals(file + ":row 3: field 'answerKey' is 'C', not one of the labels [A, B]", e.getMessage());
    }

    // ---- bad input: one line naming the file, the line and the field ----

    private String refusal(EvalTask task, String content) throws IOException {
        Files.writeString(temp.resolve(task.key() + ".jsonl"), content);
        Exception e = assertThrows(IllegalArgumentException.class, () -> {
            for (TaskRow row : TaskFiles.read(TaskFiles.find(temp, task), -1)) {
                task.item(row);
            }
        });
        assertTrue(!e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    @Test
    void aMissingFieldIsNamedWithItsLine() throws IOException {
        String file = temp.resolve("piqa.jsonl").toString();
        assertEquals(file + ":2: field 'sol2' is missing", refusal(EvalTask.PIQA, """
                {"goal": "g", "sol1": "a", "sol2": "b", "label": 1}
                {"goal": "g", "sol1": "a", "label": 1}
                """));
    }

    @Test
    void aLabelOutOfRangeIsRefused() throws IOException {
        String file = temp.resolve("hellaswag.jsonl").toString();
        assertEquals(file + ":1: field 'label' is 4, out of range for 2 choices", refusal(EvalTask.HELLASWAG, """
                {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["d", "e"], "label": "4"}
                """));
        assertEquals(temp.resolve("boolq.jsonl") + ":1: field 'label' is not an integer: 'yes'", refusal(EvalTask.BOOLQ, """
                {"passage": "p", "question": "q", "label": "yes"}
                """));
        assertEquals(temp.resolve("winogrande.jsonl") + ":1: field 'answer' is '3', expected 1 or 2", refusal(EvalTask.WINOGRANDE, """
                {"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "3"}
                """));
    }

    @Test
    void brokenLinesAndWrongTypesAreRefused() throws IOException {
        String file = temp.resolve("openbookqa.jsonl").toString();
        assertTrue(refusal(EvalTask.OPENBOOKQA, "\n{\"question_stem\": \n").startsWith(file + ":2: malformed JSON"));
        assertEquals(file + ":1: field 'choices.text' is not a non-empty list of strings", refusal(EvalTask.OPENBOOKQA, """
                {"question_stem": "s", "choices": {"text": "a", "label": ["A"]}, "answerKey": "A"}
                """));
        assertEquals(temp.resolve("winogrande.jsonl") + ":1: field 'sentence' has no blank '_'", refusal(EvalTask.WINOGRANDE, """
                {"sentence": "no blank", "option1": "x", "option2": "y", "answer": "1"}
                """));
    }

    @Test
    void aMissingTaskFileAndAnUnknownTaskAreRefused() {
        NoSuchFileException missing = assertThrows(NoSuchFileException.class, () -> TaskFiles.find(temp, EvalTask.PIQA));
        assertTrue(missing.getMessage().contains("neither piqa.jsonl nor piqa.parquet in " + temp), missing.getMessage());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> EvalTask.of("mmlu"));
        assertEquals("unknown task 'mmlu' (expected one of hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq, openbookqa)",
                unknown.getMessage());
    }
}
