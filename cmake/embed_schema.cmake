# Writes OUT: a C file holding every schema file of FILES (sorted) as a
# NUL-terminated string, in the array tlsrptd_schema_${NAME}[] (and its length
# tlsrptd_schema_${NAME}_count) that the ${NAME} storage backend applies in order.
set(body "/* Generated from the files in schema/${NAME} by cmake/embed_schema.cmake. Do not edit. */\n")
string(APPEND body "#include \"store_schema.h\"\n")
set(list "")
set(i 0)
foreach(f ${FILES})
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  get_filename_component(name ${f} NAME)
  string(APPEND body "static const char schema_${i}[] = {${hex}0x00};\n")
  string(APPEND list "  {\"${name}\", schema_${i}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const struct store_schema_file tlsrptd_schema_${NAME}[] = {\n${list}  {NULL, NULL}};\n")
string(APPEND body "const size_t tlsrptd_schema_${NAME}_count = ${i};\n")
file(WRITE ${OUT} "${body}")
