package io.tinyllamaj.trainer.cli;

/** Parses "1,2,3" token lists from the command line and checks them against a vocabulary. */
final class TokenList {

    private TokenList() {
    }

    static int[] parse(String option, String text) {
        String[] parts = text.trim().split("\\s*,\\s*", -1); // -1: a trailing empty entry is kept, and refused below
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(option + ": '" + parts[i] + "' at position " + i
                        + " is not a token id (expected comma-separated integers)");
            }
        }
        return ids;
    }

    static void checkVocabulary(String option, int[] ids, int vocabSize) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new IllegalArgumentException(option + ": token id " + ids[i] + " at position " + i
                        + " is outside the model's vocabulary [0, " + vocabSize + ")");
            }
        }
    }
}
