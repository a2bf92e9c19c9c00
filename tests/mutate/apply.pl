#!/usr/bin/perl
# apply.pl FILE FUNCTION FIND REPLACE
#
# Replaces the first occurrence of FIND (literal text; "\n" stands for a
# newline) inside the body of FUNCTION in FILE, and nothing else. A function
# is found by its definition: a line at column 0 naming "FUNCTION(" that is
# not a declaration, up to the next "}" at column 0 ("*": the whole file). Mutants so survive code
# moving around; one whose function or text is gone fails loudly, so that
# the list is kept up to date. Exit 2 when it does not apply.
use strict;
use warnings;

my ($file, $func, $find, $repl) = @ARGV;
die "usage: apply.pl FILE FUNCTION FIND REPLACE\n" unless defined $repl;
for ($find, $repl) { s/\\n/\n/g; }
open(my $in, '<', $file) or die "apply.pl: $file: $!\n";
my @lines = <$in>;
close($in);

my ($start, $end);
if ($func eq '*') { # the whole file
  ($start, $end) = (0, $#lines);
}
for (my $i = 0; $i < @lines && !defined $start; $i++) {
  next unless $lines[$i] =~ /^[A-Za-z_].*\b\Q$func\E\(/;
  if ($lines[$i] =~ /\{.*\}\s*$/) { # a one-line definition
    ($start, $end) = ($i, $i);
    last;
  }
  # a definition: its header ends with "{" before any ";"
  my $j = $i;
  $j++ while $j < @lines && $lines[$j] !~ /[{;]\s*$/;
  next if $j >= @lines || $lines[$j] =~ /;\s*$/;
  $start = $i;
  for (my $k = $j + 1; $k < @lines; $k++) {
    if ($lines[$k] =~ /^}/) { $end = $k; last; }
  }
  last;
}
if (!defined $start || !defined $end) {
  print STDERR "apply.pl: $file: no definition of $func\n";
  exit 2;
}
my $body = join('', @lines[$start .. $end]);
my $at = index($body, $find);
if ($at < 0) {
  print STDERR "apply.pl: $file: $func does not contain: $find\n";
  exit 2;
}
substr($body, $at, length($find)) = $repl;
open(my $out, '>', $file) or die "apply.pl: $file: $!\n";
print $out join('', @lines[0 .. $start - 1]) if $start > 0;
print $out $body;
print $out join('', @lines[$end + 1 .. $#lines]) if $end < $#lines;
close($out);
exit 0;
