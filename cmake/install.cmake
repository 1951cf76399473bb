# cmake/install.cmake: what `cmake --install` puts where (included by the top
# CMakeLists.txt after the tlsrptd target).
#
#   bin/tlsrptd                          the binary (CMakeLists.txt)
#   share/man/man8/tlsrptd.8             man pages, written in scdoc (docs/man/*.scd)
#   share/man/man5/tlsrptd.conf.5          and built here (Debian package scdoc)
#   /etc/tlsrptd/tlsrptd.conf            samples/tlsrptd.conf, mode 0640, only when
#                                        there is none (an edited file is kept)
#   /etc/logrotate.d/tlsrptd             contrib/tlsrptd.logrotate
#   lib/systemd/system/tlsrptd.service   contrib/tlsrptd.service.in with the paths
#   share/doc/tlsrptd/                   README.md, docs/*.md (the unit's
#                                        Documentation=), examples/tlsrptd.conf
#
# The configuration directory is /etc whatever the prefix (the binary reads
# /etc/tlsrptd/tlsrptd.conf by default, as the unit and the docs say); give
# -DCMAKE_INSTALL_SYSCONFDIR=etc for a relocatable tree under the prefix.
# TLSRPTD_SYSTEMD_UNITDIR: where the unit goes (default PREFIX/lib/systemd/system,
# a directory systemd reads for /usr and /usr/local alike).
if(NOT DEFINED CMAKE_INSTALL_SYSCONFDIR)
  set(CMAKE_INSTALL_SYSCONFDIR /etc CACHE PATH "read-only single-machine data (/etc)")
endif()
include(GNUInstallDirs)

set(TLSRPTD_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/tlsrptd)
set(TLSRPTD_CONFIG_FILE ${TLSRPTD_CONFDIR}/tlsrptd.conf)
set(TLSRPTD_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(TLSRPTD_DOCDIR ${CMAKE_INSTALL_FULL_DOCDIR})
set(TLSRPTD_SYSTEMD_UNITDIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system
    CACHE PATH "where the systemd unit is installed")
# every command reads this file when no -c is given (config.h)
target_compile_definitions(tlsrptd_core PUBLIC TLSRPTD_CONFIG_FILE="${TLSRPTD_CONFIG_FILE}")

# man pages
option(TLSRPTD_MAN "Build and install the man pages (needs scdoc)" ON)
if(TLSRPTD_MAN)
  find_program(SCDOC scdoc)
  if(NOT SCDOC)
    message(FATAL_ERROR "scdoc builds the man pages: apt-get install scdoc (scripts/deps.sh), "
                        "or configure with -DTLSRPTD_MAN=OFF")
  endif()
  set(TLSRPTD_MAN_PAGES)
  foreach(page tlsrptd.8 tlsrptd.conf.5)
    set(src ${PROJECT_SOURCE_DIR}/docs/man/${page}.scd)
    set(out ${PROJECT_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}
                       COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
                       COMMAND sh -c "\"${SCDOC}\" < \"${src}\" > \"${out}\""
                       DEPENDS ${src}
                       COMMENT "scdoc ${page}"
                       VERBATIM)
    list(APPEND TLSRPTD_MAN_PAGES ${out})
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${TLSRPTD_MAN_PAGES})
endif()

# the systemd unit, with the paths of this installation
configure_file(${PROJECT_SOURCE_DIR}/contrib/tlsrptd.service.in
               ${PROJECT_BINARY_DIR}/tlsrptd.service @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tlsrptd.service DESTINATION ${TLSRPTD_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/contrib/tlsrptd.logrotate
        DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/logrotate.d RENAME tlsrptd)

# docs, and the sample configuration as an example
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "man" EXCLUDE)
install(FILES ${PROJECT_SOURCE_DIR}/samples/tlsrptd.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# /etc/tlsrptd/tlsrptd.conf: never overwrite an edited one. Installed for real
# (no DESTDIR, as root): readable by group tlsrptd when it exists, and
# placeholders for the two files the unit loads as credentials.
install(CODE "
  set(conf \"\$ENV{DESTDIR}${TLSRPTD_CONFIG_FILE}\")
  if(EXISTS \"\${conf}\")
    message(STATUS \"Keeping: \${conf}\")
  else()
    file(INSTALL \"${PROJECT_SOURCE_DIR}/samples/tlsrptd.conf\"
         DESTINATION \"${TLSRPTD_CONFDIR}\"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
  endif()
  if(\"\$ENV{DESTDIR}\" STREQUAL \"\")
    execute_process(COMMAND getent group tlsrptd RESULT_VARIABLE no_group OUTPUT_QUIET)
    if(no_group EQUAL 0)
      execute_process(COMMAND chgrp tlsrptd \"${TLSRPTD_CONFIG_FILE}\")
    else()
      message(STATUS \"No group tlsrptd yet: adduser --system --group --home /var/lib/tlsrptd \"
                     \"tlsrptd; chgrp tlsrptd ${TLSRPTD_CONFIG_FILE}\")
    endif()
    foreach(f tls.crt tls.key)
      if(NOT EXISTS \"${TLSRPTD_CONFDIR}/\${f}\" AND NOT IS_SYMLINK \"${TLSRPTD_CONFDIR}/\${f}\")
        file(WRITE \"${TLSRPTD_CONFDIR}/\${f}\"
             \"# tlsrptd: replace this file with your certificate's (see tlsrptd.conf(5))\\n\")
        execute_process(COMMAND chmod 600 \"${TLSRPTD_CONFDIR}/\${f}\")
      endif()
    endforeach()
  endif()")
