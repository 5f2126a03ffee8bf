package io.tinyllamaj.data.eval;

import java.util.List;

/**
 * One task item as lm-evaluation-harness scores it: a (context, continuation) request per choice,
 * the gold choice, and each choice's length in characters (acc_norm's divisor).
 *
 * @param place         where the item came from (FILE:LINE or FILE:row N)
 * @param requests      one per choice, in choice order
 * @param gold          the index of the right choice
 * @param choiceLengths characters (code points, as Python's len) of each choice's text
 */
public record EvalItem(String place, List<Request> requests, int gold, int[] choiceLengths) {

    /** A log-likelihood request: the log-probability of {@code continuation} after {@code context}. */
    public record Request(String context, String continuation) {
    }
}
