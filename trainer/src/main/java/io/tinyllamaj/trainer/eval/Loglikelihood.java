package io.tinyllamaj.trainer.eval;

/** A continuation's log-probability (the sum over its tokens) and whether greedy decoding would produce it. */
public record Loglikelihood(double logprob, boolean greedy) {
}
