package io.tinyllamaj.data.tokenizer;

/** SentencePiece's {@code remove_extra_whitespaces}: trim spaces and collapse runs of them to one. */
final class Whitespace {

    private Whitespace() {
    }

    static String removeExtra(String text) {
        StringBuilder out = new StringBuilder(text.length());
        boolean pendingSpace = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ' ') {
                pendingSpace = out.length() > 0;
            } else {
                if (pendingSpace) {
                    out.append(' ');
                    pendingSpace = false;
                }
                out.append(c);
            }
        }
        return out.toString();
    }
}
