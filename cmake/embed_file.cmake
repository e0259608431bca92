# cmake -DIN=file -DOUT=file.cc -DSYMBOL=name -P embed_file.cmake
# Writes OUT defining `const unsigned char SYMBOL[]` with IN's bytes and
# `const unsigned long SYMBOL_len`, so a binary carries a file it needs at run
# time (the compiled BPF program) without looking for it on disk.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR len "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/embed_file.cmake.\n"
  "extern const unsigned char ${SYMBOL}[];\nextern const unsigned long ${SYMBOL}_len;\n"
  "alignas(8) const unsigned char ${SYMBOL}[] = {\n${bytes}\n};\n"
  "const unsigned long ${SYMBOL}_len = ${len};\n")
