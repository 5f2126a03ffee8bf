package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.EvalItem;

/**
 * One item's scores: acc picks the choice of the largest log-likelihood, acc_norm the largest
 * log-likelihood per character of the choice; ties go to the first, as numpy's argmax.
 */
public record ItemScore(EvalItem item, Loglikelihood[] choices) {

    public int predicted() {
        int best = 0;
        for (int i = 1; i < choices.length; i++) {
            best = choices[i].logprob() > choices[best].logprob() ? i : best;
        }
        return best;
    }

    public int predictedNormalized() {
        int best = 0;
        for (int i = 1; i < choices.length; i++) {
            best = perChar(i) > perChar(best) ? i : best;
        }
        return best;
    }

    private double perChar(int choice) {
        return choices[choice].logprob() / item.choiceLengths()[choice];
    }

    public boolean correct() {
        return predicted() == item.gold();
    }

    public boolean correctNormalized() {
        return predictedNormalized() == item.gold();
    }
}
