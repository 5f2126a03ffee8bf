package io.tinyllamaj.data.eval;

import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The harness's context/continuation split, worked by hand with Llama 2 ids: ▁Hello 15043,
 * ▁world 3186, Answer 673, : 29901, ▁yes 4874, ▁ 29871, ▁▁ 259, the 278, ▁cat 6635, </s> 2.
 */
class ContinuationSplitTest {

    private static final LlamaTokenizer LLAMA2 = LlamaTokenizer.llama2();

    private static void check(String context, String continuation, int[] contextIds, int[] continuationIds) {
        ContinuationSplit.Tokens tokens = ContinuationSplit.encode(LLAMA2, context, continuation, false);
        assertArrayEquals(contextIds, tokens.context(), "context of '" + context + "'");
        assertArrayEquals(continuationIds, tokens.continuation(), "continuation of '" + context + "' + '" + continuation + "'");
    }

    @Test
    void theDelimiterSpaceStartsTheContinuationsFirstPiece() {
        check("Answer:", " yes", new int[] {673, 29901}, new int[] {4874});
    }

    /** "Answer: " alone ends in a lone ▁ (29871) that "Answer: yes" never has: the space moves to the continuation. */
    @Test
    void aTrailingSpaceOfTheContextMovesToTheContinuation() {
        check("Answer: ", "yes", new int[] {673, 29901}, new int[] {4874});
        check("Hello ", "world", new int[] {15043}, new int[] {3186});
    }

    /** "Answer:" + "  yes": two spaces are a lone ▁ then ▁yes. */
    @Test
    void aTrailingSpaceBeforeTheDelimiterGivesTwoSpaces() {
        check("Answer: ", " yes", new int[] {673, 29901}, new int[] {29871, 4874});
    }

    @Test
    void anEmptyContextIsTheEndOfTextToken() {
        check("", "Hello", new int[] {2}, new int[] {15043});
        // "  Hello" with the dummy prefix is ▁▁▁Hello: ▁▁ (259) then ▁Hello
        check("  ", "Hello", new int[] {2}, new int[] {259, 15043});
    }

    @Test
    void bosComesBeforeTheContextOnlyWhenAsked() {
        ContinuationSplit.Tokens tokens = ContinuationSplit.encode(LLAMA2, "the", " cat", true);
        assertArrayEquals(new int[] {1, 278}, tokens.context());
        assertArrayEquals(new int[] {6635}, tokens.continuation());
    }
}
