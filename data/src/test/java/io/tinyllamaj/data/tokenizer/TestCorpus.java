package io.tinyllamaj.data.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Deterministic varied texts for the conformance tests and the benchmark: prose, code in
 * several languages, CJK, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai, emoji (with ZWJ
 * sequences and modifiers), whitespace runs, control characters, long repeats, literal special
 * tokens, and code points that only byte fallback can encode. No lone surrogates: they have no
 * UTF-8, so no two encoders agree on them.
 */
final class TestCorpus {

    private static final String[] WORDS = ("the of and to in is was for on that with as by at from his her "
            + "it an were which are this be has had not or but have they one their all been its also "
            + "Hello world tokenizer Llama model training language pretraining sequence gradient "
            + "optimizer learning rate schedule checkpoint throughput naïve café résumé coöperate "
            + "Straße über façade jalapeño 2023 3.14159 1,000,000 42 e.g. i.e. U.S.A. Dr. Mr. O'Brien "
            + "don't can't it's we're you'll they've co-operate state-of-the-art").split(" ");
    private static final String[] CODE = {
            "public static int add(int a, int b) {\n    return a + b;\n}\n",
            "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
            "#include <stdio.h>\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
            "const xs = [1, 2, 3].map((x) => x * 2); // doubled\nconsole.log(`${xs}`);\n",
            "fn main() {\n    let v: Vec<u32> = (0..10).filter(|x| x % 2 == 0).collect();\n    println!(\"{:?}\", v);\n}\n",
            "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;\n",
            "<div class=\"box\"><p>Hi &amp; bye</p></div>\n<script>alert('x')</script>\n",
            "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
            "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do echo \"$f\"; done\n",
            "\\begin{equation} E = mc^2 \\end{equation} % LaTeX\n",
            "{\"key\": [1, 2.5e-3, null, true], \"nested\": {\"a\": \"b\"}}\n",
    };
    private static final String[] SCRIPTS = {
            "Привет мир, как дела? Съешь же ещё этих мягких французских булок.",
            "Γειά σου κόσμε, ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
            "مرحبا بالعالم، هذه جملة عربية للاختبار.",
            "שלום עולם, זה משפט בעברית.",
            "नमस्ते दुनिया, यह एक परीक्षण वाक्य है।",
            "สวัสดีชาวโลก นี่คือประโยคทดสอบ",
            "你好，世界！这是一个用于测试的中文句子。",
            "こんにちは世界、これはテスト用の日本語の文です。カタカナも。",
            "안녕하세요 세계, 이것은 테스트 문장입니다.",
            "Tiếng Việt có dấu: Đây là một câu thử nghiệm.",
    };
    private static final String[] EMOJI = {
            "😀", "🦙", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🇯🇵", "🏳️‍🌈", "❤️", "✨", "🚀", "🤖", "🙈", "😂", "🍕",
    };
    private static final String[] SPECIAL_LITERALS = {"<s>", "</s>", "<unk>", "<0x0A>", "<|endoftext|>", "[INST]", "<<SYS>>"};
    private static final String[] WHITESPACE = {" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00A0", "\u3000", "\u2581"};

    private TestCorpus() {
    }

    /** {@code count} texts from seed {@code seed}; the same arguments always give the same texts. */
    static List<String> texts(int count, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        List<String> texts = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            texts.add(text(i % 12, random));
        }
        return texts;
    }

    private static String text(int kind, SplittableRandom random) {
        StringBuilder out = new StringBuilder();
        switch (kind) {
            case 0 -> prose(out, random, 5 + random.nextInt(80));
            case 1 -> {
                for (int n = 1 + random.nextInt(4); n > 0; n--) {
                    out.append(pick(CODE, random).replace("    ", random.nextBoolean() ? "    " : "\t"));
                }
            }
            case 2 -> {
                for (int n = 1 + random.nextInt(4); n > 0; n--) {
                    out.append(pick(SCRIPTS, random)).append(pick(WHITESPACE, random));
                }
            }
            case 3 -> {
                for (int n = 5 + random.nextInt(60); n > 0; n--) {
                    out.appendCodePoint(randomFrom(random, 0x4E00, 0x9FFF, 0x3040, 0x30FF, 0xAC00, 0xD7A3, 0x0400, 0x04FF));
                    if (random.nextInt(8) == 0) {
                        out.append(pick(WHITESPACE, random));
                    }
                }
            }
            case 4 -> {
                for (int n = 3 + random.nextInt(30); n > 0; n--) {
                    out.append(random.nextInt(3) == 0 ? pick(WORDS, random) : pick(EMOJI, random));
                    if (random.nextBoolean()) {
                        out.append(' ');
                    }
                }
            }
            case 5 -> {
                for (int n = 2 + random.nextInt(30); n > 0; n--) {
                    out.append(random.nextInt(3) == 0 ? pick(WORDS, random) : pick(WHITESPACE, random).repeat(1 + random.nextInt(20)));
                }
            }
            case 6 -> {
                for (int n = 3 + random.nextInt(30); n > 0; n--) {
                    out.appendCodePoint(randomFrom(random, 0x00, 0x1F, 0x7F, 0x9F, 0x200B, 0x200F, 0xFEFF, 0xFEFF));
                    out.append(pick(WORDS, random));
                }
            }
            case 7 -> {
                String unit = random.nextBoolean() ? String.valueOf("a=- x.#*\t\n".charAt(random.nextInt(10))) : pick(WORDS, random);
                out.append(unit.repeat(1 + random.nextInt(random.nextInt(8) == 0 ? 3000 : 200)));
            }
            case 8 -> {
                for (int n = 2 + random.nextInt(20); n > 0; n--) {
                    out.append(random.nextBoolean() ? pick(SPECIAL_LITERALS, random) : pick(WORDS, random));
                    out.append(random.nextBoolean() ? " " : "");
                }
            }
            case 9 -> {
                // Linear B, mathematical alphanumerics, private use, CJK extension B: mostly not pieces.
                for (int n = 1 + random.nextInt(40); n > 0; n--) {
                    out.appendCodePoint(randomFrom(random, 0x10000, 0x100FA, 0x1D400, 0x1D7FF, 0xE000, 0xF8FF, 0x20000, 0x2A6DF));
                    if (random.nextInt(4) == 0) {
                        out.append(pick(WORDS, random));
                    }
                }
            }
            case 10 -> {
                for (int n = 1 + random.nextInt(60); n > 0; n--) {
                    int codePoint;
                    do {
                        codePoint = random.nextInt(random.nextBoolean() ? 0x3000 : 0x110000);
                    } while (codePoint >= 0xD800 && codePoint <= 0xDFFF);
                    out.appendCodePoint(codePoint);
                }
            }
            default -> {
                prose(out, random, 3 + random.nextInt(20));
                out.append(pick(WHITESPACE, random)).append(pick(CODE, random)).append(pick(SCRIPTS, random)).append(pick(EMOJI, random));
            }
        }
        return out.toString();
    }

    private static void prose(StringBuilder out, SplittableRandom random, int words) {
        for (int i = 0; i < words; i++) {
            String word = pick(WORDS, random);
            if (i == 0 || random.nextInt(10) == 0) {
                word = Character.toUpperCase(word.charAt(0)) + word.substring(1);
            }
            out.append(word).append(switch (random.nextInt(20)) {
                case 0 -> ". ";
                case 1 -> ", ";
                case 2 -> "; ";
                case 3 -> "! ";
                case 4 -> "? ";
                case 5 -> ".\n";
                case 6 -> " (" + random.nextInt(1000) + ") ";
                default -> " ";
            });
        }
    }

    private static String pick(String[] choices, SplittableRandom random) {
        return choices[random.nextInt(choices.length)];
    }

    /** A code point from one of the inclusive ranges given as (low, high) pairs. */
    private static int randomFrom(SplittableRandom random, int... ranges) {
        int range = 2 * random.nextInt(ranges.length / 2);
        return ranges[range] + random.nextInt(ranges[range + 1] - ranges[range] + 1);
    }
}
