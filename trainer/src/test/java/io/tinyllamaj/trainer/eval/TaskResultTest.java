package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.EvalItem;
import io.tinyllamaj.data.eval.EvalTask;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** acc, acc_norm and their standard errors against values worked by hand. */
class TaskResultTest {

    private static ItemScore item(int gold, int[] lengths, double... logprobs) {
        List<EvalItem.Request> requests = new ArrayList<>();
        Loglikelihood[] scores = new Loglikelihood[logprobs.length];
        for (int i = 0; i < logprobs.length; i++) {
            requests.add(new EvalItem.Request("c", " x"));
            scores[i] = new Loglikelihood(logprobs[i], false);
        }
        return new ItemScore(new EvalItem("f:1", requests, gold, lengths), scores);
    }

    /**
     * Four items:
     * 1. lls -2, -6 over lengths 1, 10: acc picks 0 (-2 > -6), norm picks 1 (-0.6 > -2); gold 0: acc 1, norm 0.
     * 2. lls -3, -3 (a tie), lengths 5, 5: both pick 0 (the first); gold 0: acc 1, norm 1.
     * 3. lls -9, -4, -8, lengths 9, 2, 4: acc picks 1; norm -1, -2, -2 picks 0; gold 1: acc 1, norm 0.
     * 4. lls -1, -5, lengths 1, 20: acc picks 0, norm -1 vs -0.25 picks 1; gold 1: acc 0, norm 1.
     * acc = 3/4; deviations 1/4, 1/4, 1/4, -3/4: squares sum 3/4, over n-1 = 1/4, sqrt 1/2, over sqrt(4): 1/4.
     * acc_norm = 2/4; deviations all 1/2: squares sum 1, over 3, sqrt(1/3), over 2: 0.288675...
     */
    @Test
    void accAndAccNormWithTheirStandardErrors() {
        List<ItemScore> items = List.of(
                item(0, new int[] {1, 10}, -2, -6),
                item(0, new int[] {5, 5}, -3, -3),
                item(1, new int[] {9, 2, 4}, -9, -4, -8),
                item(1, new int[] {1, 20}, -1, -5));
        TaskResult r = TaskResult.of(EvalTask.HELLASWAG, items, 0);
        assertEquals(4, r.n());
        assertEquals(0.75, r.acc(), 1e-15);
        assertEquals(0.25, r.accStderr(), 1e-15);
        assertEquals(0.5, r.accNorm(), 1e-15);
        assertEquals(Math.sqrt(1.0 / 3) / 2, r.accNormStderr(), 1e-15);
    }

    @Test
    void tasksWithoutAccNormAndASingleItemHaveNoValueThere() {
        TaskResult r = TaskResult.of(EvalTask.BOOLQ, List.of(item(1, new int[] {2, 3}, -2, -1)), 0);
        assertEquals(1.0, r.acc());
        assertTrue(Double.isNaN(r.accStderr()));
        assertTrue(Double.isNaN(r.accNorm()));
        String table = EvalReport.table(List.of(r));
        assertTrue(table.contains("|boolq        |     1|acc     | 1.0000|±  |    N/A|"), table);
        assertTrue(!table.contains("acc_norm"), table);
        assertEquals("{\"acc\":1.0,\"acc_stderr\":null,\"n\":1}", EvalReport.metrics(r).toString());
    }
}
