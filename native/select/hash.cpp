// Hashing and text normalisation for data selection: XXH64, SHA-256 (scalar and SHA-NI), the
// WordPunct tokenizer DSIR uses and the simplified words MinHash shingles are made of.
#include <immintrin.h>

#include <cstring>
#include <string>

#include "tersor/error.hpp"
#include "tersor/select.hpp"
#include "tersor/utf8.hpp"

namespace tersor::select {

void check_batch(const TextBatch& b, size_t byte_length, const char* what) {
  require(b.offsets != nullptr, ErrorCode::Shape, std::string(what) + ": missing offsets");
  require(b.offsets[0] == 0, ErrorCode::Shape, std::string(what) + ": offsets must start at 0");
  for (size_t i = 0; i < b.count; ++i)
    require(b.offsets[i + 1] >= b.offsets[i], ErrorCode::Shape,
            std::string(what) + ": offsets must be non-decreasing (at document " + std::to_string(i) + ")");
  require(b.offsets[b.count] == byte_length, ErrorCode::Shape,
          std::string(what) + ": last offset " + std::to_string(b.offsets[b.count]) + " != byte length " +
              std::to_string(byte_length));
}

// ---- XXH64 ----------------------------------------------------------------------------------
namespace {
constexpr uint64_t P1 = 11400714785074694791ULL, P2 = 14029467366897019727ULL, P3 = 1609587929392839161ULL,
                   P4 = 9650029242287828579ULL, P5 = 2870177450012600261ULL;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t round(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
inline uint64_t merge(uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; }
}  // namespace

uint64_t xxhash64(const void* data, size_t len, uint64_t seed) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + len;
  uint64_t h;
  if (len >= 32) {
    uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    const uint8_t* limit = end - 32;
    do {
      v1 = round(v1, rd64(p));
      v2 = round(v2, rd64(p + 8));
      v3 = round(v3, rd64(p + 16));
      v4 = round(v4, rd64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge(h, v1);
    h = merge(h, v2);
    h = merge(h, v3);
    h = merge(h, v4);
  } else {
    h = seed + P5;
  }
  h += static_cast<uint64_t>(len);
  while (p + 8 <= end) {
    h ^= round(0, rd64(p));
    h = rotl(h, 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h ^= static_cast<uint64_t>(rd32(p)) * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= (*p) * P5;
    h = rotl(h, 11) * P1;
    ++p;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

// ---- SHA-256 --------------------------------------------------------------------------------
namespace {
alignas(64) constexpr uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
constexpr uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

inline uint32_t rotr(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

void compress_scalar(uint32_t st[8], const uint8_t* blk) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t(blk[4 * i]) << 24) | (uint32_t(blk[4 * i + 1]) << 16) | (uint32_t(blk[4 * i + 2]) << 8) | blk[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
    const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

// SHA-NI block function (Intel's published instruction sequence for the SHA extensions).
__attribute__((target("sha,sse4.1"))) void compress_shani(uint32_t st[8], const uint8_t* blk) {
  const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i TMP = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&st[0]));
  __m128i STATE1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&st[4]));
  TMP = _mm_shuffle_epi32(TMP, 0xB1);
  STATE1 = _mm_shuffle_epi32(STATE1, 0x1B);
  __m128i STATE0 = _mm_alignr_epi8(TMP, STATE1, 8);
  STATE1 = _mm_blend_epi16(STATE1, TMP, 0xF0);
  const __m128i ABEF_SAVE = STATE0, CDGH_SAVE = STATE1;
  __m128i MSG, MSG0, MSG1, MSG2, MSG3;
  const __m128i* k = reinterpret_cast<const __m128i*>(K256);
  MSG0 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 0)), MASK);
  MSG1 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16)), MASK);
  MSG2 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 32)), MASK);
  MSG3 = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 48)), MASK);
  __m128i* m[4] = {&MSG0, &MSG1, &MSG2, &MSG3};
  for (int r = 0; r < 16; ++r) {
    __m128i& cur = *m[r & 3];
    MSG = _mm_add_epi32(cur, _mm_load_si128(k + r));
    STATE1 = _mm_sha256rnds2_epu32(STATE1, STATE0, MSG);
    if (r >= 3 && r < 15) {
      __m128i& nxt = *m[(r + 1) & 3];
      const __m128i T = _mm_alignr_epi8(cur, *m[(r + 3) & 3], 4);
      nxt = _mm_add_epi32(nxt, T);
      nxt = _mm_sha256msg2_epu32(nxt, cur);
    }
    MSG = _mm_shuffle_epi32(MSG, 0x0E);
    STATE0 = _mm_sha256rnds2_epu32(STATE0, STATE1, MSG);
    if (r >= 1 && r < 13) *m[(r + 3) & 3] = _mm_sha256msg1_epu32(*m[(r + 3) & 3], cur);
  }
  STATE0 = _mm_add_epi32(STATE0, ABEF_SAVE);
  STATE1 = _mm_add_epi32(STATE1, CDGH_SAVE);
  TMP = _mm_shuffle_epi32(STATE0, 0x1B);
  STATE1 = _mm_shuffle_epi32(STATE1, 0xB1);
  STATE0 = _mm_blend_epi16(TMP, STATE1, 0xF0);
  STATE1 = _mm_alignr_epi8(STATE1, TMP, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&st[0]), STATE0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&st[4]), STATE1);
}

using CompressFn = void (*)(uint32_t*, const uint8_t*);
CompressFn pick_compress() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1")) return compress_shani;
  return compress_scalar;
}
const CompressFn g_compress = pick_compress();
}  // namespace

namespace {
void sha256_with(CompressFn compress, const void* data, size_t len, uint8_t out[32]) {
  uint32_t st[8];
  std::memcpy(st, H0, sizeof st);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t left = len;
  while (left >= 64) {
    compress(st, p);
    p += 64;
    left -= 64;
  }
  uint8_t blk[128] = {};
  std::memcpy(blk, p, left);
  blk[left] = 0x80;
  const size_t total = left + 9 <= 64 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(len) * 8;
  for (int i = 0; i < 8; ++i) blk[total - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  compress(st, blk);
  if (total == 128) compress(st, blk + 64);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(st[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(st[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(st[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(st[i]);
  }
}

}  // namespace

void sha256(const void* data, size_t len, uint8_t out[32]) { sha256_with(g_compress, data, len, out); }
void sha256_portable(const void* data, size_t len, uint8_t out[32]) { sha256_with(compress_scalar, data, len, out); }

uint32_t digest_mod(const uint8_t digest[32], uint32_t m) {
  uint64_t r = 0;
  for (int i = 0; i < 32; ++i) r = ((r << 8) | digest[i]) % m;
  return static_cast<uint32_t>(r);
}

// ---- text ---------------------------------------------------------------------------------------
namespace {
using utf8::decode;
using utf8::encode;


struct AsciiTable {
  CharClass cls[128];
  constexpr AsciiTable() : cls() {
    for (int c = 0; c < 128; ++c) {
      const bool word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
      const bool space = c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
      cls[c] = word ? CharClass::Word : space ? CharClass::Space : CharClass::Other;
    }
  }
};
constexpr AsciiTable kAscii;
}  // namespace

CharClass char_class(uint32_t cp) {
  if (cp < 0x80) return kAscii.cls[cp];
  if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
      cp == 0x202F || cp == 0x205F || cp == 0x3000)
    return CharClass::Space;
  if (cp < 0xA0) return CharClass::Other;  // C1 controls
  if (cp <= 0xBF) {
    // Latin-1 punctuation and symbols; ª ² ³ µ ¹ º ¼ ½ ¾ are word characters in Python.
    switch (cp) {
      case 0xAA: case 0xB2: case 0xB3: case 0xB5: case 0xB9: case 0xBA: case 0xBC: case 0xBD: case 0xBE:
        return CharClass::Word;
      default:
        return CharClass::Other;
    }
  }
  if (cp == 0xD7 || cp == 0xF7) return CharClass::Other;
  if ((cp >= 0x2010 && cp <= 0x2027) || (cp >= 0x2030 && cp <= 0x205E) || (cp >= 0x20A0 && cp <= 0x20CF) ||
      (cp >= 0x2100 && cp <= 0x214F && cp != 0x2102 && cp != 0x2107 && !(cp >= 0x210A && cp <= 0x2113) && cp != 0x2115 &&
       !(cp >= 0x2119 && cp <= 0x211D) && cp != 0x2124 && cp != 0x2126 && cp != 0x2128 && !(cp >= 0x212A && cp <= 0x212D) &&
       !(cp >= 0x212F && cp <= 0x2139)) ||
      (cp >= 0x2190 && cp <= 0x245F) || (cp >= 0x2500 && cp <= 0x2775) || (cp >= 0x2794 && cp <= 0x2BFF) ||
      (cp >= 0x3001 && cp <= 0x3004) || (cp >= 0x3008 && cp <= 0x3020) || cp == 0x30FB ||
      (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF01 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
      (cp >= 0xFF3B && cp <= 0xFF40 && cp != 0xFF3F) || (cp >= 0xFF5B && cp <= 0xFF65) || cp == 0xFFFD ||
      (cp >= 0x1F000 && cp <= 0x1FAFF))
    return CharClass::Other;
  return CharClass::Word;
}

uint32_t lower_code_point(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (cp >= 0x100 && cp <= 0x137 && (cp & 1) == 0 && cp != 0x130) return cp + 1;
  if (cp >= 0x139 && cp <= 0x148 && (cp & 1) == 1) return cp + 1;
  if (cp >= 0x14A && cp <= 0x177 && (cp & 1) == 0) return cp + 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x179 && cp <= 0x17E && (cp & 1) == 1) return cp + 1;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 32;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  return cp;
}

void wordpunct_tokens(std::string_view text, std::string& lowered, std::vector<std::string_view>& tokens) {
  lowered.clear();
  tokens.clear();
  lowered.reserve(text.size());
  // First pass: lower-case and remember each code point's class by byte position.
  thread_local std::vector<std::pair<uint32_t, CharClass>> marks;  // (start byte in lowered, class)
  marks.clear();
  marks.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<uint8_t>(text[i]);
    if (c < 0x80) {
      const uint32_t lc = (c >= 'A' && c <= 'Z') ? c + 32 : c;
      marks.emplace_back(static_cast<uint32_t>(lowered.size()), kAscii.cls[c]);
      lowered.push_back(static_cast<char>(lc));
      ++i;
      continue;
    }
    const uint32_t cp = lower_code_point(decode(text, i));
    marks.emplace_back(static_cast<uint32_t>(lowered.size()), char_class(cp));
    encode(cp, lowered);
  }
  const size_t m = marks.size();
  size_t k = 0;
  while (k < m) {
    const CharClass cls = marks[k].second;
    if (cls == CharClass::Space) {
      ++k;
      continue;
    }
    size_t j = k + 1;
    while (j < m && marks[j].second == cls) ++j;
    const uint32_t begin = marks[k].first;
    const uint32_t end = j < m ? marks[j].first : static_cast<uint32_t>(lowered.size());
    tokens.emplace_back(lowered.data() + begin, end - begin);
    k = j;
  }
}

void simplified_words(std::string_view text, std::string& normalised, std::vector<uint32_t>& starts,
                      std::vector<uint32_t>& ends) {
  normalised.clear();
  starts.clear();
  ends.clear();
  normalised.reserve(text.size());
  bool in_word = false;
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<uint8_t>(text[i]);
    uint32_t cp;
    CharClass cls;
    if (c < 0x80) {
      cp = (c >= 'A' && c <= 'Z') ? c + 32u : c;
      cls = kAscii.cls[c];
      ++i;
    } else {
      cp = lower_code_point(decode(text, i));
      cls = char_class(cp);
    }
    if (cls == CharClass::Word) {
      if (!in_word) {
        if (!normalised.empty()) normalised.push_back(' ');
        starts.push_back(static_cast<uint32_t>(normalised.size()));
        in_word = true;
      }
      if (cp < 0x80) normalised.push_back(static_cast<char>(cp));
      else encode(cp, normalised);
    } else if (in_word) {
      ends.push_back(static_cast<uint32_t>(normalised.size()));
      in_word = false;
    }
  }
  if (in_word) ends.push_back(static_cast<uint32_t>(normalised.size()));
}

uint64_t normalised_text_hash(std::string_view text) {
  thread_local std::string norm;
  thread_local std::vector<uint32_t> s, e;
  simplified_words(text, norm, s, e);
  return xxhash64(norm.data(), norm.size(), 0);
}

}  // namespace tersor::select
