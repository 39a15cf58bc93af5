// Word tokens for MinHash shingles exactly as datatrove's MinhashDedupSignature.get_shingles makes
// them for English: `simplify_text` with the default TextNormConfig (lower-case; strip and collapse
// whitespace; delete datatrove's PUNCTUATION characters and the C0/C1 controls; NFD and drop the Mn
// marks; every run of decimal digits becomes "0"), then NLTK's word_tokenize on the result. On a
// simplified text the Treebank rules that still apply are the split of U+2018 (left single quote,
// not in datatrove's list) into its own token and the contractions cannot, gimme, gonna, gotta,
// lemme (and wanna before whitespace), split in two; everything else is a split on whitespace.
// The Unicode tables (native/select/datatrove_text_tables.inc) come from Python's unicodedata:
//   Mn / Nd categories and str.isspace as code-point ranges, str.lower, and for every code point
//   with a canonical decomposition its NFD without Mn marks (Hangul syllables, whose NFD is
//   algorithmic and has no marks, are split into jamo here as unicodedata does).
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tersor/select.hpp"
#include "tersor/utf8.hpp"

namespace tersor::select {
namespace {

struct CpRange {
  uint32_t lo, hi;
};
struct CpMap {
  uint32_t cp;
  uint32_t out[2];
  uint8_t n;
};
struct CpMap3 {
  uint32_t cp;
  uint32_t out[3];
  uint8_t n;
};

#include "datatrove_text_tables.inc"

template <size_t N>
bool in_ranges(const CpRange (&r)[N], uint32_t cp) {
  const auto it = std::upper_bound(std::begin(r), std::end(r), cp, [](uint32_t c, const CpRange& x) { return c < x.lo; });
  return it != std::begin(r) && cp <= (it - 1)->hi;
}

template <class M, size_t N>
const M* find_map(const M (&m)[N], uint32_t cp) {
  const auto it = std::lower_bound(std::begin(m), std::end(m), cp, [](const M& x, uint32_t c) { return x.cp < c; });
  return it != std::end(m) && it->cp == cp ? &*it : nullptr;
}

/// datatrove's PUNCTUATION: its 66 listed characters plus code points 0-8, 11-12, 13-31, 127-159.
bool is_datatrove_punct(uint32_t cp) {
  if (cp < 9 || cp == 11 || cp == 12 || (cp >= 13 && cp < 32) || (cp >= 127 && cp < 160)) return true;
  if (cp < 128) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
  static constexpr uint32_t kOther[] = {0xAB,   0xB4,   0xBB,   0x2013, 0x2014, 0x2019, 0x201C, 0x201D, 0x201E, 0x2026, 0x2236,
                                        0x2501, 0x25BA, 0x3001, 0x3002, 0x3008, 0x3009, 0x300A, 0x300B, 0x300C, 0x300D, 0x3010,
                                        0x3011, 0xFF01, 0xFF05, 0xFF08, 0xFF09, 0xFF0C, 0xFF0E, 0xFF11, 0xFF1A, 0xFF1B, 0xFF1F, 0xFF5E};
  return std::binary_search(std::begin(kOther), std::end(kOther), cp);
}


bool is_word_cp(uint32_t cp) {
  if (cp < 128) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  return char_class(cp) == CharClass::Word;
}

/// Appends the NLTK tokens of one whitespace-separated simplified token.
void nltk_split(const std::vector<uint32_t>& tok, std::vector<std::vector<uint32_t>>& out) {
  // Pieces between U+2018 quotes; the quote is a token of its own.
  std::vector<std::vector<uint32_t>> pieces(1);
  for (uint32_t cp : tok) {
    if (cp == 0x2018) {
      pieces.push_back({0x2018});
      pieces.emplace_back();
    } else {
      pieces.back().push_back(cp);
    }
  }
  static const std::u32string kSplit[][2] = {{U"can", U"not"}, {U"gim", U"me"}, {U"gon", U"na"}, {U"got", U"ta"}, {U"lem", U"me"}, {U"wan", U"na"}};
  for (size_t pi = 0; pi < pieces.size(); ++pi) {
    const auto& p = pieces[pi];
    if (p.empty()) continue;
    // Each maximal run of word characters equal to a contraction is split ("wanna" only when
    // whitespace follows it, i.e. at the end of the whole token).
    std::vector<uint32_t> cur;
    size_t i = 0;
    while (i < p.size()) {
      if (!is_word_cp(p[i])) {
        cur.push_back(p[i++]);
        continue;
      }
      size_t j = i;
      while (j < p.size() && is_word_cp(p[j])) ++j;
      const std::u32string run(p.begin() + static_cast<std::ptrdiff_t>(i), p.begin() + static_cast<std::ptrdiff_t>(j));
      const std::u32string* hit = nullptr;
      for (const auto& s : kSplit) {
        if (run != s[0] + s[1]) continue;
        if (s[0] == U"wan" && !(j == p.size() && pi + 1 == pieces.size())) continue;
        hit = s;
      }
      if (hit) {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
        out.emplace_back(hit[0].begin(), hit[0].end());
        out.emplace_back(hit[1].begin(), hit[1].end());
      } else {
        cur.insert(cur.end(), run.begin(), run.end());
      }
      i = j;
    }
    if (!cur.empty()) out.push_back(cur);
  }
}

}  // namespace

void datatrove_words(std::string_view text, std::string& joined, std::vector<uint32_t>& starts, std::vector<uint32_t>& ends) {
  joined.clear();
  starts.clear();
  ends.clear();
  joined.reserve(text.size());
  size_t tstart = 0;     // byte offset of the current token in `joined`
  bool in_tok = false;   // the current token has at least one character
  bool in_digits = false;
  thread_local std::vector<uint32_t> cps;
  thread_local std::vector<std::vector<uint32_t>> toks;
  auto flush = [&] {
    if (in_tok) {
      const std::string_view t(joined.data() + tstart, joined.size() - tstart);
      static constexpr std::string_view kRare[] = {"\xe2\x80\x98", "cannot", "gimme", "gonna", "gotta", "lemme", "wanna"};
      bool rare = false;
      for (auto r : kRare) rare = rare || t.find(r) != std::string_view::npos;
      if (!rare) {
        starts.push_back(static_cast<uint32_t>(tstart));
        ends.push_back(static_cast<uint32_t>(joined.size()));
      } else {
        // NLTK's splits: decode the token, split, write the pieces back.
        cps.clear();
        for (size_t q = 0; q < t.size();) cps.push_back(utf8::decode(t, q));
        toks.clear();
        nltk_split(cps, toks);
        joined.resize(tstart);
        for (size_t k = 0; k < toks.size(); ++k) {
          if (k) joined.push_back(' ');
          starts.push_back(static_cast<uint32_t>(joined.size()));
          for (uint32_t cp : toks[k]) utf8::encode(cp, joined);
          ends.push_back(static_cast<uint32_t>(joined.size()));
        }
      }
    }
    in_tok = false;
    in_digits = false;
  };
  auto put = [&](uint32_t cp) {
    if (!in_tok) {
      if (!joined.empty()) joined.push_back(' ');
      tstart = joined.size();
      in_tok = true;
    }
    if (cp < 0x80) joined.push_back(static_cast<char>(cp));
    else utf8::encode(cp, joined);
  };
  auto emit = [&](uint32_t m) {
    if (m < 0x80) {
      if (m >= '0' && m <= '9') {
        if (!in_digits) put('0');
        in_digits = true;
      } else {
        put(m);
        in_digits = false;
      }
      return;
    }
    // Hangul syllables: NFD is the algorithmic jamo split (no Mn marks).
    if (m >= 0xAC00 && m <= 0xD7A3) {
      const uint32_t q = m - 0xAC00;
      put(0x1100 + q / 588);
      put(0x1161 + (q % 588) / 28);
      if (q % 28) put(0x11A7 + q % 28);
      in_digits = false;
      return;
    }
    if (in_ranges(kMn, m)) return;  // dropped: does not end a digit run
    if (in_ranges(kNd, m)) {
      if (!in_digits) put('0');
      in_digits = true;
      return;
    }
    put(m);
    in_digits = false;
  };
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<uint8_t>(text[i]);
    if (b < 0x80) {
      ++i;
      if (b == ' ' || (b >= 9 && b <= 13) || (b >= 28 && b <= 31)) flush();
      else if (!is_datatrove_punct(b)) emit((b >= 'A' && b <= 'Z') ? b + 32u : b);
      continue;
    }
    const uint32_t cp = utf8::decode(text, i);
    uint32_t low[2] = {cp, 0};
    size_t nl = 1;
    if (const CpMap* l = find_map(kLower, cp)) {
      low[0] = l->out[0];
      low[1] = l->out[1];
      nl = l->n;
    }
    for (size_t k = 0; k < nl; ++k) {
      const uint32_t c = low[k];
      if (c < 128 ? (c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31)) : in_ranges(kSpace, c)) {
        flush();
      } else if (is_datatrove_punct(c)) {
        // deleted without splitting the token ("don't" -> "dont", "1,000" -> "1000" -> "0")
      } else if (const CpMap3* d = c < 128 ? nullptr : find_map(kNfdBase, c)) {
        for (size_t q = 0; q < d->n; ++q) emit(d->out[q]);
      } else {
        emit(c);
      }
    }
  }
  flush();
}

}  // namespace tersor::select
