// Stand-in for `wirespeed_core`, used only to prove the replay harness (sim/harness) right.
//
// It has the core's port list (plus two `standin_aux_*` ports the harness knows nothing about,
// to prove that extra ports are tolerated and reachable through peek/poke) and does
// something cheap but fully checkable for every frame on either RX line and every chunk on
// the order-entry RX stream (s_axis_oe_rx_*, a third "line" here, without tuser):
//
// * counts frames, bytes, tuser-flagged frames and malformed beats (tkeep not contiguous from
//   byte 0, a partial tkeep on a non-last beat, tuser on a non-last beat) per line in
//   AXI4-Lite registers;
// * at tlast, emits one 64-byte C2H record (byte 0 = tdata[7:0], all fields little-endian):
//     0  seq        u32  records generated so far (dropped ones included: loss is a hole)
//     4  kind       u8   0xA5
//     5  line       u8   0 = A, 1 = B, 2 = OE RX
//     6  aux        u16  bit 0 = tuser on the tlast beat
//     8  timestamp  u64  cycle of the tlast beat (cycle counter, 0 = first cycle after reset)
//     16 index      u64  frame index on that line since reset
//     24 start      u64  cycle of the first beat
//     32 length     u32  frame length in bytes (popcount of tkeep over all beats)
//     36 beats      u32  beats in the frame
//     40 checksum   u64  c = 0; per beat: c = rotl64(c, 1) ^ (tdata with tkeep-off bytes zeroed)
//     48 zero       16 bytes
//   Records wait in a 16-entry FIFO; when it is full a record is dropped (and counted).
// * H2C -> TX loopback: every H2C record R accepted in cycle c goes into a 4-entry FIFO
//   (s_axis_h2c_tready = FIFO not full and the `block` control bit clear) and comes out on
//   m_axis_tx_* as one packet of 8 + L bytes, L = R[0] & 63: the accept cycle c as a u64
//   (little-endian), then R[0 .. L-1]. Beats are full but the last (tkeep contiguous from lane
//   0), tlast on the last, held until tready. A record accepted in cycle c is in the FIFO
//   from c + 1; the serializer loads the FIFO head when idle or in the cycle its packet's last
//   beat is accepted, so the first beat of an idle loop's packet is presented in c + 2 and
//   packets follow each other without a gap.
// * AXI4-Lite (32-bit, independent AW/W channels, SLVERR for unmapped addresses):
//     0x00 ID 0x57535344 (RO)   0x04 scratch (RW, byte strobes)   0x08 standin_aux_in[31:0]
//     0x10/0x20/0x40 frames A/B/OE            0x14/0x24/0x44 bytes A/B/OE
//     0x18/0x28/0x48 tuser frames A/B/OE      0x1C/0x2C/0x4C malformed beats A/B/OE
//     0x30 records generated    0x34 records dropped     0x38/0x3C cycle counter low/high (RO)
//     0x60 control (RW, bit 0 = block: s_axis_h2c_tready low)
//     0x64 H2C records accepted 0x68 H2C beats without tlast
//     0x6C TX beats accepted    0x70 TX packets accepted (tlast beats)
//     0x74 cycle[31:0] of the last H2C handshake    0x78 cycle[31:0] of the last TX handshake

/* verilator lint_off DECLFILENAME */

module standin_line (
    input  wire        clk,
    input  wire        rst,
    input  wire [63:0] cycle,
    input  wire [63:0] tdata,
    input  wire [7:0]  tkeep,
    input  wire        tvalid,
    input  wire        tlast,
    input  wire        tuser,
    output reg         done,
    output reg  [63:0] d_index,
    output reg  [63:0] d_start,
    output reg  [63:0] d_end,
    output reg  [31:0] d_len,
    output reg  [31:0] d_beats,
    output reg  [63:0] d_csum,
    output reg         d_err,
    output reg  [31:0] frames,
    output reg  [31:0] bytes,
    output reg  [31:0] errors,
    output reg  [31:0] malformed
);
    reg        in_frame;
    reg [63:0] start;
    reg [31:0] len;
    reg [31:0] beats;
    reg [63:0] csum;

    wire [63:0] mask = {{8{tkeep[7]}}, {8{tkeep[6]}}, {8{tkeep[5]}}, {8{tkeep[4]}},
                        {8{tkeep[3]}}, {8{tkeep[2]}}, {8{tkeep[1]}}, {8{tkeep[0]}}};
    wire [31:0] nbytes = {31'd0, tkeep[0]} + {31'd0, tkeep[1]} + {31'd0, tkeep[2]}
                       + {31'd0, tkeep[3]} + {31'd0, tkeep[4]} + {31'd0, tkeep[5]}
                       + {31'd0, tkeep[6]} + {31'd0, tkeep[7]};
    // tkeep must be 2^n - 1 with n >= 1 (contiguous from byte 0), and all-ones unless tlast.
    wire        keep_ok = tkeep != 8'h00 && ((tkeep & (tkeep + 8'h01)) == 8'h00)
                       && (tlast || tkeep == 8'hFF);
    wire        bad_beat = !keep_ok || (tuser && !tlast);
    wire [63:0] c_in = in_frame ? csum : 64'd0;
    wire [63:0] c_next = {c_in[62:0], c_in[63]} ^ (tdata & mask);
    wire [31:0] len_next = (in_frame ? len : 32'd0) + nbytes;
    wire [31:0] beats_next = (in_frame ? beats : 32'd0) + 32'd1;

    always @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            in_frame <= 1'b0;
            frames <= 32'd0;
            bytes <= 32'd0;
            errors <= 32'd0;
            malformed <= 32'd0;
        end else if (tvalid) begin
            bytes <= bytes + nbytes;
            if (bad_beat)
                malformed <= malformed + 32'd1;
            if (tlast) begin
                done <= 1'b1;
                d_index <= {32'd0, frames};
                d_start <= in_frame ? start : cycle;
                d_end <= cycle;
                d_len <= len_next;
                d_beats <= beats_next;
                d_csum <= c_next;
                d_err <= tuser;
                frames <= frames + 32'd1;
                if (tuser)
                    errors <= errors + 32'd1;
                in_frame <= 1'b0;
            end else begin
                if (!in_frame)
                    start <= cycle;
                in_frame <= 1'b1;
                len <= len_next;
                beats <= beats_next;
                csum <= c_next;
            end
        end
    end
endmodule

module wirespeed_core (
    input  wire         clk,
    input  wire         rst,

    input  wire [63:0]  s_axis_rx_a_tdata,
    input  wire [7:0]   s_axis_rx_a_tkeep,
    input  wire         s_axis_rx_a_tvalid,
    input  wire         s_axis_rx_a_tlast,
    input  wire         s_axis_rx_a_tuser,

    input  wire [63:0]  s_axis_rx_b_tdata,
    input  wire [7:0]   s_axis_rx_b_tkeep,
    input  wire         s_axis_rx_b_tvalid,
    input  wire         s_axis_rx_b_tlast,
    input  wire         s_axis_rx_b_tuser,

    output wire [511:0] m_axis_c2h_tdata,
    output wire         m_axis_c2h_tvalid,
    input  wire         m_axis_c2h_tready,
    output wire         m_axis_c2h_tlast,

    input  wire [15:0]  s_axil_awaddr,
    input  wire         s_axil_awvalid,
    output wire         s_axil_awready,
    input  wire [31:0]  s_axil_wdata,
    input  wire [3:0]   s_axil_wstrb,
    input  wire         s_axil_wvalid,
    output wire         s_axil_wready,
    output reg  [1:0]   s_axil_bresp,
    output reg          s_axil_bvalid,
    input  wire         s_axil_bready,
    input  wire [15:0]  s_axil_araddr,
    input  wire         s_axil_arvalid,
    output wire         s_axil_arready,
    output reg  [31:0]  s_axil_rdata,
    output reg  [1:0]   s_axil_rresp,
    output reg          s_axil_rvalid,
    input  wire         s_axil_rready,

    output wire [63:0]  m_axis_tx_tdata,
    output wire [7:0]   m_axis_tx_tkeep,
    output wire         m_axis_tx_tlast,
    output wire         m_axis_tx_tvalid,
    input  wire         m_axis_tx_tready,

    input  wire [511:0] s_axis_h2c_tdata,
    input  wire         s_axis_h2c_tvalid,
    input  wire         s_axis_h2c_tlast,
    output wire         s_axis_h2c_tready,

    input  wire [63:0]  s_axis_oe_rx_tdata,
    input  wire [7:0]   s_axis_oe_rx_tkeep,
    input  wire         s_axis_oe_rx_tlast,
    input  wire         s_axis_oe_rx_tvalid,

    input  wire [69:0]  standin_aux_in,
    output reg  [69:0]  standin_aux_out
);
    localparam [7:0] KIND = 8'hA5;
    localparam DEPTH = 16;

    reg [63:0] cycle;
    always @(posedge clk)
        cycle <= rst ? 64'd0 : cycle + 64'd1;

    always @(posedge clk)
        standin_aux_out <= ~standin_aux_in;

    wire        a_done, b_done, o_done;
    wire [63:0] a_index, a_start, a_end, a_csum, b_index, b_start, b_end, b_csum;
    wire [63:0] o_index, o_start, o_end, o_csum;
    wire [31:0] a_len, a_beats, b_len, b_beats, o_len, o_beats;
    wire        a_err, b_err, o_err;
    wire [31:0] a_frames, a_bytes, a_errors, a_malformed;
    wire [31:0] b_frames, b_bytes, b_errors, b_malformed;
    wire [31:0] o_frames, o_bytes, o_errors, o_malformed;

    standin_line line_a (
        .clk(clk), .rst(rst), .cycle(cycle),
        .tdata(s_axis_rx_a_tdata), .tkeep(s_axis_rx_a_tkeep), .tvalid(s_axis_rx_a_tvalid),
        .tlast(s_axis_rx_a_tlast), .tuser(s_axis_rx_a_tuser),
        .done(a_done), .d_index(a_index), .d_start(a_start), .d_end(a_end), .d_len(a_len),
        .d_beats(a_beats), .d_csum(a_csum), .d_err(a_err),
        .frames(a_frames), .bytes(a_bytes), .errors(a_errors), .malformed(a_malformed));

    standin_line line_b (
        .clk(clk), .rst(rst), .cycle(cycle),
        .tdata(s_axis_rx_b_tdata), .tkeep(s_axis_rx_b_tkeep), .tvalid(s_axis_rx_b_tvalid),
        .tlast(s_axis_rx_b_tlast), .tuser(s_axis_rx_b_tuser),
        .done(b_done), .d_index(b_index), .d_start(b_start), .d_end(b_end), .d_len(b_len),
        .d_beats(b_beats), .d_csum(b_csum), .d_err(b_err),
        .frames(b_frames), .bytes(b_bytes), .errors(b_errors), .malformed(b_malformed));

    standin_line line_o (
        .clk(clk), .rst(rst), .cycle(cycle),
        .tdata(s_axis_oe_rx_tdata), .tkeep(s_axis_oe_rx_tkeep), .tvalid(s_axis_oe_rx_tvalid),
        .tlast(s_axis_oe_rx_tlast), .tuser(1'b0),
        .done(o_done), .d_index(o_index), .d_start(o_start), .d_end(o_end), .d_len(o_len),
        .d_beats(o_beats), .d_csum(o_csum), .d_err(o_err),
        .frames(o_frames), .bytes(o_bytes), .errors(o_errors), .malformed(o_malformed));

    // ---- record FIFO: up to three writes (A, B, OE in that order) and one read per cycle ----
    reg [511:0] fifo [0:DEPTH-1];
    reg [3:0]   wp, rp;
    reg [4:0]   count;
    reg [31:0]  seq, generated, dropped;

    wire [4:0]  space = DEPTH - count;
    wire        pop = m_axis_c2h_tvalid && m_axis_c2h_tready;
    wire        put_a = a_done && space != 5'd0;
    wire        put_b = b_done && space > {4'd0, put_a};
    wire        put_o = o_done && space > {4'd0, put_a} + {4'd0, put_b};
    wire [31:0] seq_b = seq + {31'd0, a_done};
    wire [31:0] seq_o = seq_b + {31'd0, b_done};

    wire [511:0] rec_a = {128'd0, a_csum, a_beats, a_len, a_start, a_index, a_end,
                          15'd0, a_err, 8'd0, KIND, seq};
    wire [511:0] rec_b = {128'd0, b_csum, b_beats, b_len, b_start, b_index, b_end,
                          15'd0, b_err, 8'd1, KIND, seq_b};
    wire [511:0] rec_o = {128'd0, o_csum, o_beats, o_len, o_start, o_index, o_end,
                          15'd0, o_err, 8'd2, KIND, seq_o};

    assign m_axis_c2h_tvalid = count != 5'd0;
    assign m_axis_c2h_tdata = fifo[rp];
    assign m_axis_c2h_tlast = 1'b1;

    always @(posedge clk) begin
        if (rst) begin
            wp <= 4'd0;
            rp <= 4'd0;
            count <= 5'd0;
            seq <= 32'd0;
            generated <= 32'd0;
            dropped <= 32'd0;
        end else begin
            if (put_a)
                fifo[wp] <= rec_a;
            if (put_b)
                fifo[wp + {3'd0, put_a}] <= rec_b;
            if (put_o)
                fifo[wp + {3'd0, put_a} + {3'd0, put_b}] <= rec_o;
            wp <= wp + {3'd0, put_a} + {3'd0, put_b} + {3'd0, put_o};
            rp <= rp + {3'd0, pop};
            count <= count + {4'd0, put_a} + {4'd0, put_b} + {4'd0, put_o} - {4'd0, pop};
            seq <= seq + {31'd0, a_done} + {31'd0, b_done} + {31'd0, o_done};
            generated <= generated + {31'd0, a_done} + {31'd0, b_done} + {31'd0, o_done};
            dropped <= dropped + {31'd0, a_done && !put_a} + {31'd0, b_done && !put_b}
                     + {31'd0, o_done && !put_o};
        end
    end

    // ---- H2C -> TX loopback: 4-entry FIFO of {record, accept cycle}, then a serializer ----
    reg [575:0] hfifo [0:3];
    reg [1:0]   hwp, hrp;
    reg [2:0]   hcount;
    reg         h2c_block;
    reg [31:0]  h2c_records, h2c_nolast, tx_beat_count, tx_packet_count;
    reg [31:0]  h2c_last_cycle, tx_last_cycle;

    reg         tx_busy;
    reg [575:0] tx_pkt;     // byte k of the packet in bits 8k+7:8k
    reg [3:0]   tx_pos, tx_lastpos;
    reg [7:0]   tx_lastkeep;

    assign s_axis_h2c_tready = !h2c_block && hcount != 3'd4;
    wire        h2c_put = s_axis_h2c_tvalid && s_axis_h2c_tready;
    wire [6:0]  head_len = {1'b0, hfifo[hrp][69:64]} + 7'd7;  // L + 7 (L = record byte 0 & 63)
    wire        tx_fire = m_axis_tx_tvalid && m_axis_tx_tready;
    wire        tx_load = (!tx_busy || (tx_fire && m_axis_tx_tlast)) && hcount != 3'd0;

    assign m_axis_tx_tvalid = tx_busy;
    assign m_axis_tx_tdata = tx_pkt[{tx_pos, 6'd0} +: 64];
    assign m_axis_tx_tlast = tx_pos == tx_lastpos;
    assign m_axis_tx_tkeep = m_axis_tx_tlast ? tx_lastkeep : 8'hFF;

    always @(posedge clk) begin
        if (rst) begin
            hwp <= 2'd0;
            hrp <= 2'd0;
            hcount <= 3'd0;
            tx_busy <= 1'b0;
            tx_pos <= 4'd0;
            tx_lastpos <= 4'd0;
            tx_lastkeep <= 8'hFF;
            h2c_records <= 32'd0;
            h2c_nolast <= 32'd0;
            tx_beat_count <= 32'd0;
            tx_packet_count <= 32'd0;
            h2c_last_cycle <= 32'd0;
            tx_last_cycle <= 32'd0;
        end else begin
            if (h2c_put) begin
                hfifo[hwp] <= {s_axis_h2c_tdata, cycle};
                hwp <= hwp + 2'd1;
                h2c_records <= h2c_records + 32'd1;
                h2c_last_cycle <= cycle[31:0];
                if (!s_axis_h2c_tlast)
                    h2c_nolast <= h2c_nolast + 32'd1;
            end
            if (tx_fire) begin
                tx_beat_count <= tx_beat_count + 32'd1;
                tx_last_cycle <= cycle[31:0];
                if (m_axis_tx_tlast)
                    tx_packet_count <= tx_packet_count + 32'd1;
            end
            if (tx_load) begin
                tx_pkt <= hfifo[hrp];
                hrp <= hrp + 2'd1;
                tx_busy <= 1'b1;
                tx_pos <= 4'd0;
                tx_lastpos <= head_len[6:3];  // (8 + L - 1) / 8
                tx_lastkeep <= 8'hFF >> (3'd7 - head_len[2:0]);  // (8 + L - 1) % 8 + 1 bytes
            end else if (tx_fire) begin
                if (m_axis_tx_tlast)
                    tx_busy <= 1'b0;
                else
                    tx_pos <= tx_pos + 4'd1;
            end
            hcount <= hcount + {2'd0, h2c_put} - {2'd0, tx_load};
        end
    end

    // ---- AXI4-Lite slave: AW and W are accepted independently, B after both ----
    reg        aw_full, w_full;
    reg [15:0] aw_addr;
    reg [31:0] w_data;
    reg [3:0]  w_strb;
    reg [31:0] scratch;

    assign s_axil_awready = !aw_full;
    assign s_axil_wready = !w_full;
    assign s_axil_arready = !s_axil_rvalid;

    always @(posedge clk) begin
        if (rst) begin
            aw_full <= 1'b0;
            w_full <= 1'b0;
            s_axil_bvalid <= 1'b0;
            s_axil_bresp <= 2'd0;
            s_axil_rvalid <= 1'b0;
            s_axil_rresp <= 2'd0;
            s_axil_rdata <= 32'd0;
            scratch <= 32'd0;
            h2c_block <= 1'b0;
        end else begin
            if (s_axil_awvalid && s_axil_awready) begin
                aw_full <= 1'b1;
                aw_addr <= s_axil_awaddr;
            end
            if (s_axil_wvalid && s_axil_wready) begin
                w_full <= 1'b1;
                w_data <= s_axil_wdata;
                w_strb <= s_axil_wstrb;
            end
            if (s_axil_bvalid && s_axil_bready)
                s_axil_bvalid <= 1'b0;
            if (aw_full && w_full && !s_axil_bvalid) begin
                aw_full <= 1'b0;
                w_full <= 1'b0;
                s_axil_bvalid <= 1'b1;
                if (aw_addr == 16'h0004) begin
                    s_axil_bresp <= 2'd0;
                    if (w_strb[0]) scratch[7:0] <= w_data[7:0];
                    if (w_strb[1]) scratch[15:8] <= w_data[15:8];
                    if (w_strb[2]) scratch[23:16] <= w_data[23:16];
                    if (w_strb[3]) scratch[31:24] <= w_data[31:24];
                end else if (aw_addr == 16'h0060) begin
                    s_axil_bresp <= 2'd0;
                    if (w_strb[0]) h2c_block <= w_data[0];
                end else begin
                    s_axil_bresp <= 2'd2;
                end
            end

            if (s_axil_rvalid && s_axil_rready)
                s_axil_rvalid <= 1'b0;
            if (s_axil_arvalid && s_axil_arready) begin
                s_axil_rvalid <= 1'b1;
                s_axil_rresp <= 2'd0;
                case (s_axil_araddr)
                    16'h0000: s_axil_rdata <= 32'h57535344;
                    16'h0004: s_axil_rdata <= scratch;
                    16'h0008: s_axil_rdata <= standin_aux_in[31:0];
                    16'h0010: s_axil_rdata <= a_frames;
                    16'h0014: s_axil_rdata <= a_bytes;
                    16'h0018: s_axil_rdata <= a_errors;
                    16'h001C: s_axil_rdata <= a_malformed;
                    16'h0020: s_axil_rdata <= b_frames;
                    16'h0024: s_axil_rdata <= b_bytes;
                    16'h0028: s_axil_rdata <= b_errors;
                    16'h002C: s_axil_rdata <= b_malformed;
                    16'h0030: s_axil_rdata <= generated;
                    16'h0034: s_axil_rdata <= dropped;
                    16'h0038: s_axil_rdata <= cycle[31:0];
                    16'h003C: s_axil_rdata <= cycle[63:32];
                    16'h0040: s_axil_rdata <= o_frames;
                    16'h0044: s_axil_rdata <= o_bytes;
                    16'h0048: s_axil_rdata <= o_errors;
                    16'h004C: s_axil_rdata <= o_malformed;
                    16'h0060: s_axil_rdata <= {31'd0, h2c_block};
                    16'h0064: s_axil_rdata <= h2c_records;
                    16'h0068: s_axil_rdata <= h2c_nolast;
                    16'h006C: s_axil_rdata <= tx_beat_count;
                    16'h0070: s_axil_rdata <= tx_packet_count;
                    16'h0074: s_axil_rdata <= h2c_last_cycle;
                    16'h0078: s_axil_rdata <= tx_last_cycle;
                    default: begin
                        s_axil_rdata <= 32'hDEADBEEF;
                        s_axil_rresp <= 2'd2;
                    end
                endcase
            end
        end
    end
endmodule
