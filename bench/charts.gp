# gnuplot script for scripts/compare.sh: reads the data files `parley-bench report` writes into DIR and
# draws DIR/latency.png (latency percentiles per server, one panel per scenario, log scale) and
# DIR/rss-per-session.png (server memory per connected session).
#   gnuplot -e "dir='docs/bench'" bench/charts.gp
if (!exists("dir")) dir = "docs/bench"

set terminal pngcairo size 1400,900 font "sans,10" noenhanced
set output dir."/latency.png"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set logscale y 10
set yrange [0.1:*]
set ylabel "ms (log scale)"
set multiplot layout 2,2 title "parley-bench latency percentiles per server"
array scen[4] = ["connect", "chat", "muc", "offline"]
array what[4] = ["connect: login (TCP to presence echo)", "chat: end-to-end message latency", \
                 "muc: end-to-end fan-out latency", "offline: delivery after the recipient's presence"]
do for [i=1:4] {
  f = dir."/latency-".scen[i].".dat"
  set title what[i]
  if (system("test -s ".f." && echo y") eq "y") {
    n = int(system("awk 'NR==1 {print NF}' ".f))
    plot for [c=2:n] f using c:xtic(1) title columnheader(c)
  } else {
    unset key
    set label 1 "no data" at graph 0.5, graph 0.5 center
    plot [0:1] 1 lc rgb "white" notitle
    unset label 1
    set key top left
  }
}
unset multiplot

set output dir."/rss-per-session.png"
set terminal pngcairo size 800,500 font "sans,10" noenhanced
unset logscale y
# A small run can show a negative figure (the server freed more than the sessions took): keep it visible.
set autoscale y
set xzeroaxis
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9
set title "server memory per session: (VmRSS - VmRSS before the ramp) / sessions"
set ylabel "KiB per session"
set key top left
f = dir."/rss.dat"
if (system("test -s ".f." && echo y") eq "y") {
  plot f using 2:xtic(1) title columnheader(2) lc rgb "#4472c4", \
       '' using 3 title columnheader(3) lc rgb "#ed7d31", \
       '' using ($0-0.15):2:(sprintf("%.1f", $2)) with labels offset 0,0.8 notitle, \
       '' using ($0+0.15):3:(sprintf("%.1f", $3)) with labels offset 0,0.8 notitle
} else {
  set label 1 "no data" at graph 0.5, graph 0.5 center
  plot [0:1] 1 lc rgb "white" notitle
}
