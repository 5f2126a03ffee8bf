package io.tinyllamaj.trainer.checkpoint;

import java.util.ArrayList;
import java.util.List;

/**
 * Which checkpoints pruning leaves: the newest {@code keepLast}, every milestone (a step that is
 * a multiple of {@code keepEvery}, kept forever, the way TinyLlama published one every ~50k
 * steps) and the one {@code latest} names.
 *
 * @param keepLast  how many of the newest to keep, at least 1
 * @param keepEvery milestone spacing in steps; 0 keeps no milestones
 */
public record Retention(int keepLast, long keepEvery) {

    public Retention {
        if (keepLast < 1 || keepEvery < 0) {
            throw new IllegalArgumentException("checkpoint retention needs keep_last >= 1 and keep_every >= 0, got "
                    + keepLast + " and " + keepEvery);
        }
    }

    /** The newest {@code keepLast}, nothing kept forever. */
    public static Retention last(int keepLast) {
        return new Retention(keepLast, 0);
    }

    public boolean milestone(long step) {
        return keepEvery > 0 && step > 0 && step % keepEvery == 0;
    }

    /** The steps to delete from {@code steps} (oldest first), given the step {@code latest} names. */
    public List<Long> prune(List<Long> steps, long latest) {
        List<Long> doomed = new ArrayList<>();
        for (int i = 0; i < steps.size() - keepLast; i++) {
            long step = steps.get(i);
            if (step != latest && !milestone(step)) {
                doomed.add(step);
            }
        }
        return doomed;
    }
}
